-- Observations partitioned by Vietnamese month (issue 14, item 3). Every period a user asks for (a month's
-- report, iot_daily's day, retention) is a month of Vietnam's calendar (Asia/Ho_Chi_Minh, UTC+7, no daylight
-- saving), so a partition now holds [YYYY-MM-01 00:00+07, next month 00:00+07) and is named
-- iot_observations_yYYYYmMM (iot_observations_y2026m01: the readings of 01/2026 in Vietnam). The UTC-month
-- partitions of 0023 (iot_observations_YYYYMM) are re-partitioned here, in this one transaction: each is
-- detached, its last seven hours (which belong to the next Vietnamese month) set aside, renamed with its
-- indexes, given the first seven hours of its Vietnamese month from the DEFAULT partition, and attached with
-- the new bounds; the rows set aside go back through the parent (into their month's partition, made when
-- it is within the function's range, else the DEFAULT one). The count and the sums of the readings' keys
-- and results are compared before and after; any difference aborts the migration. Partitions carry no
-- grants of their own (the server's role reads and writes through gis_ioc.iot_observations), as before.

-- The partition of the Vietnamese month holding ``month`` (any day of it), made when missing; readings of
-- that month already in the DEFAULT partition move into it. Owned by the migrations' owner and callable by
-- the server's role, which owns no table (SECURITY DEFINER, search_path pinned); only from the 119 months
-- before the current Vietnamese month to the two after it (a reading outside stays in the DEFAULT partition).
CREATE OR REPLACE FUNCTION gis_ioc.iot_ensure_partition(month date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first      date := date_trunc('month', month::timestamp)::date;
    this_month date := date_trunc('month', now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date;
    lo         timestamptz := first::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh';
    hi         timestamptz := (first + interval '1 month') AT TIME ZONE 'Asia/Ho_Chi_Minh';
    name       text := 'iot_observations_' || to_char(first, '"y"YYYY"m"MM');
BEGIN
    IF month IS NULL OR first < this_month - interval '119 months' OR first > this_month + interval '2 months' THEN
        RAISE EXCEPTION 'no partition for month %: outside the 119 months before the current Vietnamese month (%) '
            'to the two after it', month, to_char(this_month, 'MM/YYYY')
            USING ERRCODE = '22023';
    END IF;
    IF to_regclass('gis_ioc.' || name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('gis_ioc.iot_ensure_partition'));
    IF to_regclass('gis_ioc.' || name) IS NOT NULL THEN
        RETURN name;
    END IF;
    LOCK TABLE gis_ioc.iot_observations_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE gis_ioc.%I (LIKE gis_ioc.iot_observations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM gis_ioc.iot_observations_default WHERE phenomenon_time >= %L AND phenomenon_time < %L RETURNING *) '
        'INSERT INTO gis_ioc.%I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE gis_ioc.iot_observations ATTACH PARTITION gis_ioc.%I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN name;
END
$$;

DO $$
DECLARE
    zone       constant text := 'Asia/Ho_Chi_Minh';
    this_month date := date_trunc('month', now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date;
    cols       text;
    before     record;
    after      record;
    part       record;
    idx        record;
    m          date;
    lo         timestamptz;
    hi         timestamptz;
    new_name   text;
    renamed    date[] := '{}';
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute
     WHERE attrelid = 'gis_ioc.iot_observations'::regclass AND attnum > 0 AND NOT attisdropped;
    SELECT count(*) AS n, coalesce(sum(result::numeric), 0) AS results,
           coalesce(sum(datastream_id::numeric), 0) AS streams,
           coalesce(sum(extract(epoch FROM phenomenon_time)), 0) AS times
      INTO before FROM gis_ioc.iot_observations;

    PERFORM pg_advisory_xact_lock(hashtext('gis_ioc.iot_ensure_partition'));
    LOCK TABLE gis_ioc.iot_observations IN ACCESS EXCLUSIVE MODE;
    CREATE TEMP TABLE iot_repartition_moving (LIKE gis_ioc.iot_observations) ON COMMIT DROP;

    -- 1. every UTC-month partition: detached, its rows of the next Vietnamese month set aside, renamed
    FOR part IN
        SELECT c.relname
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'gis_ioc.iot_observations'::regclass AND c.relname ~ '^iot_observations_[0-9]{6}$'
         ORDER BY c.relname
    LOOP
        m := to_date(substr(part.relname, 18), 'YYYYMM');
        lo := m::timestamp AT TIME ZONE zone;
        hi := (m + interval '1 month') AT TIME ZONE zone;
        new_name := 'iot_observations_' || to_char(m, '"y"YYYY"m"MM');
        EXECUTE format('ALTER TABLE gis_ioc.iot_observations DETACH PARTITION gis_ioc.%I', part.relname);
        EXECUTE format(
            'WITH moved AS (DELETE FROM gis_ioc.%I WHERE phenomenon_time < %L OR phenomenon_time >= %L RETURNING %s) '
            'INSERT INTO iot_repartition_moving (%s) SELECT %s FROM moved', part.relname, lo, hi, cols, cols, cols);
        EXECUTE format('ALTER TABLE gis_ioc.%I RENAME TO %I', part.relname, new_name);
        FOR idx IN
            SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
             WHERE x.indrelid = format('gis_ioc.%I', new_name)::regclass AND c.relname LIKE part.relname || '%'
        LOOP
            EXECUTE format('ALTER INDEX gis_ioc.%I RENAME TO %I',
                           idx.relname, new_name || substr(idx.relname, length(part.relname) + 1));
        END LOOP;
        renamed := renamed || m;
    END LOOP;

    -- 2. each one gets the first hours of its Vietnamese month from the DEFAULT partition, then its new bounds
    FOREACH m IN ARRAY renamed LOOP
        lo := m::timestamp AT TIME ZONE zone;
        hi := (m + interval '1 month') AT TIME ZONE zone;
        new_name := 'iot_observations_' || to_char(m, '"y"YYYY"m"MM');
        EXECUTE format(
            'WITH moved AS (DELETE FROM gis_ioc.iot_observations_default WHERE phenomenon_time >= %L AND phenomenon_time < %L '
            'RETURNING %s) INSERT INTO gis_ioc.%I (%s) SELECT %s FROM moved', lo, hi, cols, new_name, cols, cols);
        EXECUTE format('ALTER TABLE gis_ioc.iot_observations ATTACH PARTITION gis_ioc.%I FOR VALUES FROM (%L) TO (%L)',
                       new_name, lo, hi);
    END LOOP;

    -- 3. the rows set aside, into their month's partition (made when within the function's range)
    FOR m IN SELECT DISTINCT date_trunc('month', phenomenon_time AT TIME ZONE zone)::date FROM iot_repartition_moving LOOP
        IF m >= this_month - interval '119 months' AND m <= this_month + interval '2 months' THEN
            PERFORM gis_ioc.iot_ensure_partition(m);
        END IF;
    END LOOP;
    EXECUTE format('INSERT INTO gis_ioc.iot_observations (%s) SELECT %s FROM iot_repartition_moving', cols, cols);

    -- 4. this Vietnamese month and the next two exist, as 0023 made them for UTC months
    PERFORM gis_ioc.iot_ensure_partition((this_month + make_interval(months => k))::date) FROM generate_series(0, 2) AS k;

    SELECT count(*) AS n, coalesce(sum(result::numeric), 0) AS results,
           coalesce(sum(datastream_id::numeric), 0) AS streams,
           coalesce(sum(extract(epoch FROM phenomenon_time)), 0) AS times
      INTO after FROM gis_ioc.iot_observations;
    IF (after.n, after.results, after.streams, after.times) IS DISTINCT FROM
       (before.n, before.results, before.streams, before.times) THEN
        RAISE EXCEPTION 're-partitioning by Vietnamese month changed the readings: % rows (sum %) before, % rows (sum %) after',
            before.n, before.results, after.n, after.results;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                WHERE s.nspname = 'gis_ioc' AND c.relname ~ '^iot_observations_[0-9]{6}$') THEN
        RAISE EXCEPTION 're-partitioning by Vietnamese month left a UTC-month partition behind';
    END IF;
END
$$;
