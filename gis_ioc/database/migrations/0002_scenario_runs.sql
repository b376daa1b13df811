-- Every scenario run, with what it was asked, the data it saw and what it answered,
-- so that a figure quoted in a meeting can be reproduced and compared with the next period's run.
CREATE TABLE gis_ioc.scenario_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scenario      text NOT NULL,
    period        text NOT NULL CHECK (period ~ '^\d{4}(-Q[1-4])?$'),
    selection     jsonb NOT NULL,
    data_version  jsonb NOT NULL,
    result        jsonb NOT NULL,
    run_by        text NOT NULL DEFAULT current_user,
    run_at        timestamptz NOT NULL DEFAULT now(),
    duration_ms   double precision
);
CREATE INDEX scenario_runs_scenario_idx ON gis_ioc.scenario_runs (scenario, period, run_at DESC);
