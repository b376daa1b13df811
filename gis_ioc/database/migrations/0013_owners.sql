-- Owners (issue 11): a scenario run and an OGC API process job belong to the account that made it.
-- Others see it only when it is shared with them explicitly (shared_with: account names, '*' for every
-- account, 'public' for everyone) or when they are administrators; the rule is Viewer.may_see_owned
-- (gis_ioc/query/viewer.py), applied by gis_ioc/scenarios/view.py. Made without an account: owner NULL
-- (nobody's: only administrators see it). Rows made before this migration have no owner either.
ALTER TABLE gis_ioc.scenario_runs
    ADD COLUMN owner        text,
    ADD COLUMN shared_with  text[] NOT NULL DEFAULT '{}' CHECK (cardinality(shared_with) <= 100);
COMMENT ON COLUMN gis_ioc.scenario_runs.owner IS 'The account that made the run (NULL: made without an account)';
COMMENT ON COLUMN gis_ioc.scenario_runs.shared_with IS
    'Accounts the owner shared the run with (''*'': every account, ''public'': everyone)';
CREATE INDEX scenario_runs_owner_idx ON gis_ioc.scenario_runs (owner, run_at DESC);

ALTER TABLE gis_ioc.jobs
    ADD COLUMN owner        text,
    ADD COLUMN shared_with  text[] NOT NULL DEFAULT '{}' CHECK (cardinality(shared_with) <= 100),
    ADD COLUMN personal     boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN gis_ioc.jobs.owner IS 'The account that started the job (NULL: started without an account)';
COMMENT ON COLUMN gis_ioc.jobs.personal IS
    'Run with access to personal data: its result is kept from those without that access';
CREATE INDEX jobs_owner_idx ON gis_ioc.jobs (owner, created DESC);

COMMENT ON COLUMN gis_ioc.scenario_runs.run_by IS
    'Who made the run, as the audit trail names them (before migration 0013: the database role)';
