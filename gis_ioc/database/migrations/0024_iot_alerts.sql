-- Sensor judgement (issue 14; gis_ioc/iot/judge.py, alerts.py, live.py).
-- Alerts with a lifecycle: open → acknowledged → closed (each transition also in the audit trail). One
-- alert at most is live (not closed) per device and condition: 'limit:<property>:<averaging>' (QCVN
-- 05:2023/BTNMT), 'aqi' (VN_AQI band Kém or worse), 'water' (flood alarm level I–III), 'stale:<property>'.
CREATE TABLE gis_ioc.iot_alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_code     text NOT NULL,
    datastream_id   bigint,
    kind            text NOT NULL CHECK (kind IN ('limit', 'aqi', 'water', 'stale')),
    condition       text NOT NULL,
    state           text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'closed')),
    severity        integer NOT NULL DEFAULT 1,   -- alarm level I–III, AQI band (3 = Kém … 6 = Nguy hại), 1 otherwise
    value           float8,
    threshold       float8,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    closed_at       timestamptz,
    closed_by       text,
    CHECK ((state = 'closed') = (closed_at IS NOT NULL)),
    CHECK (state <> 'acknowledged' OR acknowledged_at IS NOT NULL)
);
CREATE UNIQUE INDEX iot_alerts_live_idx ON gis_ioc.iot_alerts (device_code, condition) WHERE state <> 'closed';
CREATE INDEX iot_alerts_opened_idx ON gis_ioc.iot_alerts (opened_at DESC);

-- Live serving: every committed change of the latest values tells the listening server processes which
-- datastreams moved (NOTIFY gis_ioc_iot, payload: comma-separated ids, or '*' when too many for one
-- notification). Notifications are delivered at commit, so a listener never sees an uncommitted reading.
CREATE FUNCTION gis_ioc.iot_notify_latest() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ids text;
BEGIN
    SELECT string_agg(DISTINCT datastream_id::text, ',') INTO ids FROM changed;
    IF ids IS NOT NULL THEN
        PERFORM pg_notify('gis_ioc_iot', CASE WHEN length(ids) > 7000 THEN '*' ELSE ids END);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER iot_latest_notify_insert AFTER INSERT ON gis_ioc.iot_latest
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gis_ioc.iot_notify_latest();
CREATE TRIGGER iot_latest_notify_update AFTER UPDATE ON gis_ioc.iot_latest
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gis_ioc.iot_notify_latest();

-- Alerts moving are pushed the same way (payload 'alert:<id>').
CREATE FUNCTION gis_ioc.iot_notify_alert() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_notify('gis_ioc_iot', 'alert:' || NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER iot_alerts_notify AFTER INSERT OR UPDATE ON gis_ioc.iot_alerts
    FOR EACH ROW EXECUTE FUNCTION gis_ioc.iot_notify_alert();
