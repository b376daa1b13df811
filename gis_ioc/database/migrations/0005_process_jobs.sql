-- OGC API - Processes jobs, kept by pygeoapi's PostgreSQL job manager (the columns its model expects;
-- results are JSON files under GIS_IOC_HOME/jobs, named by the job's identifier).
CREATE TABLE gis_ioc.jobs (
    identifier  varchar PRIMARY KEY,
    type        varchar NOT NULL DEFAULT 'process',
    process_id  varchar NOT NULL,
    created     timestamp,
    started     timestamp,
    finished    timestamp,
    updated     timestamp,
    status      varchar NOT NULL,
    location    varchar,
    mimetype    varchar,
    message     varchar,
    progress    integer NOT NULL
);
CREATE INDEX jobs_created_idx ON gis_ioc.jobs (created DESC);
