-- Citizen reports (issue 15; gis_ioc/feedback). A report's public part (category, description, point,
-- commune, handling unit, state, deadline) is in feedback_reports; the reporter's name, phone and e-mail
-- are kept apart in feedback_reporters, whose rows the server's role reads only for the handling units
-- the transaction's viewer may see personal data of (row-level security on the setting
-- gis_ioc.feedback_reporters: comma-separated unit codes, '*' for every unit; unset: none). The server's
-- role may insert reporters but never update or delete them; grants: gis_ioc/database/roles.py BOOKKEEPING.
CREATE TABLE gis_ioc.feedback_reports (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category        text NOT NULL,
    description     text NOT NULL CHECK (length(btrim(description)) BETWEEN 1 AND 4000),
    address         text CHECK (length(address) <= 500),
    geom            geometry(Point, 4326) NOT NULL,
    commune_code    text NOT NULL,
    unit            text NOT NULL,             -- the handling unit now (xa:<commune> or a unit code)
    level           integer NOT NULL DEFAULT 0 CHECK (level >= 0),  -- escalations so far
    urgent          boolean NOT NULL DEFAULT false,
    state           text NOT NULL DEFAULT 'received' CHECK (state IN (
                        'received', 'assigned', 'in_progress', 'resolved', 'closed', 'rejected', 'reopening')),
    received_at     timestamptz NOT NULL DEFAULT now(),
    due_at          timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    source          text NOT NULL CHECK (source IN ('open311', 'web')),
    client          text,                      -- the account (API key) of the app that sent it, if any
    token_sha256    bytea NOT NULL CHECK (octet_length(token_sha256) = 32),  -- the reporter's token
    duplicate_of    bigint REFERENCES gis_ioc.feedback_reports (id),         -- proposed at intake
    merged_into     bigint REFERENCES gis_ioc.feedback_reports (id)          -- merged by the handling unit
);
CREATE INDEX feedback_reports_geom_idx ON gis_ioc.feedback_reports USING gist (geom);
CREATE INDEX feedback_reports_received_idx ON gis_ioc.feedback_reports (received_at);
CREATE INDEX feedback_reports_unit_idx ON gis_ioc.feedback_reports (unit, state);
CREATE INDEX feedback_reports_due_idx ON gis_ioc.feedback_reports (due_at)
    WHERE state IN ('received', 'assigned', 'in_progress', 'reopening');

CREATE TABLE gis_ioc.feedback_reporters (
    report_id   bigint PRIMARY KEY REFERENCES gis_ioc.feedback_reports (id),
    name        text CHECK (length(name) <= 200),
    phone       text CHECK (length(phone) <= 30),
    email       text CHECK (length(email) <= 254)
);
COMMENT ON TABLE gis_ioc.feedback_reporters IS
    'Personal data of reporters: read only for the handling unit with personal data (row-level security)';

CREATE FUNCTION gis_ioc.feedback_sees_reporter(unit text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('gis_ioc.feedback_reporters', true), '') = '*'
        OR unit = ANY (string_to_array(nullif(current_setting('gis_ioc.feedback_reporters', true), ''), ','))
$$;
ALTER TABLE gis_ioc.feedback_reporters ENABLE ROW LEVEL SECURITY;
CREATE POLICY reporters_insert ON gis_ioc.feedback_reporters FOR INSERT WITH CHECK (true);
CREATE POLICY reporters_read ON gis_ioc.feedback_reporters FOR SELECT USING (
    EXISTS (SELECT 1 FROM gis_ioc.feedback_reports r
            WHERE r.id = report_id AND gis_ioc.feedback_sees_reporter(r.unit)));

-- Every change of state, assignment and escalation, append-only for the server's role.
CREATE TABLE gis_ioc.feedback_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id   bigint NOT NULL REFERENCES gis_ioc.feedback_reports (id),
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('received', 'transition', 'escalated', 'answer', 'rating', 'merged')),
    from_state  text,
    to_state    text,
    unit        text,
    note        text CHECK (length(note) <= 4000)
);
CREATE INDEX feedback_events_report_idx ON gis_ioc.feedback_events (report_id, at);

-- Answers of the handling unit to the reporter (public: shown as Open311 status_notes).
CREATE TABLE gis_ioc.feedback_answers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id   bigint NOT NULL REFERENCES gis_ioc.feedback_reports (id),
    at          timestamptz NOT NULL DEFAULT now(),
    unit        text NOT NULL,
    author      text NOT NULL,
    body        text NOT NULL CHECK (length(btrim(body)) BETWEEN 1 AND 4000)
);
CREATE INDEX feedback_answers_report_idx ON gis_ioc.feedback_answers (report_id, at);

-- The reporter's rating after resolution (1 to 5), one per resolution round.
CREATE TABLE gis_ioc.feedback_ratings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id   bigint NOT NULL REFERENCES gis_ioc.feedback_reports (id),
    at          timestamptz NOT NULL DEFAULT now(),
    score       smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment     text CHECK (length(comment) <= 2000),
    resolved_at timestamptz NOT NULL,
    UNIQUE (report_id, resolved_at)
);

-- Photos, re-encoded as JPEG without metadata (EXIF, GPS) before they are stored: the only copy kept.
CREATE TABLE gis_ioc.feedback_photos (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id   bigint NOT NULL REFERENCES gis_ioc.feedback_reports (id),
    position    smallint NOT NULL CHECK (position BETWEEN 1 AND 3),
    jpeg        bytea NOT NULL CHECK (octet_length(jpeg) <= 4194304),
    width       integer NOT NULL,
    height      integer NOT NULL,
    UNIQUE (report_id, position)
);
