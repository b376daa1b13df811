-- Who to call in each commune during an emergency: the leaders of the People's Committee and the
-- heads of the commune police and military command. Kept apart from the boundaries (they change
-- after every election, the boundaries do not) and internal: these are officials' personal contacts.
CREATE TABLE gis_ioc.commune_contacts (
    commune_code  text NOT NULL CHECK (commune_code ~ '^\d{5}$'),
    role          text NOT NULL CHECK (role IN ('chairman', 'vice_chairman', 'police_chief', 'military_commander')),
    full_name     text NOT NULL,
    title         text NOT NULL,
    office_phone  text,
    mobile_phone  text,
    email         text,
    is_demo       boolean NOT NULL DEFAULT false,
    load_id       bigint REFERENCES gis_ioc.loads (id),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (commune_code, role)
);
