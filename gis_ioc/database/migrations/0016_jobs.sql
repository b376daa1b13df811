-- One job system (issue 12): exports, and maps and reports run in the background, live in the same table
-- as pygeoapi's OGC API process jobs, so that any server process answers about any job
-- (gis_ioc/maps/jobs.py). `type` tells them apart: 'process' (pygeoapi's), 'export', 'map', 'report';
-- `status` uses pygeoapi's words (accepted, running, successful, failed, dismissed); times are UTC, as
-- pygeoapi writes them; `progress` is the percentage; `updated` is the heartbeat of a queued or running
-- job (a job without one for a minute lost its process and is reported failed). pygeoapi's model names
-- only the columns it knows: the new ones have defaults or may be NULL.
ALTER TABLE gis_ioc.jobs
    ADD COLUMN request  jsonb,
    ADD COLUMN folder   text,
    ADD COLUMN result   jsonb,
    ADD COLUMN done     bigint NOT NULL DEFAULT 0,
    ADD COLUMN total    bigint,
    ADD COLUMN worker   text;
COMMENT ON COLUMN gis_ioc.jobs.type IS
    '''process'': an OGC API process job (pygeoapi); ''export'', ''map'', ''report'': the API''s background jobs';
COMMENT ON COLUMN gis_ioc.jobs.request IS 'What was asked (the request''s parameters), for the job''s owner';
COMMENT ON COLUMN gis_ioc.jobs.folder IS
    'The job''s private folder, relative to GIS_IOC_HOME (exports/<secret>); removed with the job';
COMMENT ON COLUMN gis_ioc.jobs.result IS 'The file made: name, media type, count, description, download headers';
COMMENT ON COLUMN gis_ioc.jobs.done IS 'Rows (or steps) done';
COMMENT ON COLUMN gis_ioc.jobs.total IS 'Rows (or steps) in all, once known';
COMMENT ON COLUMN gis_ioc.jobs.worker IS 'host:pid of the server process that runs (or ran) the job';
COMMENT ON COLUMN gis_ioc.jobs.updated IS
    'Last change; for a queued or running job its heartbeat (refreshed every 10 s by the process holding it)';

-- the retention sweep and the search for jobs that lost their process
CREATE INDEX jobs_ended_idx ON gis_ioc.jobs ((coalesce(finished, updated, created)));
CREATE INDEX jobs_live_idx ON gis_ioc.jobs (updated) WHERE status IN ('accepted', 'running');
