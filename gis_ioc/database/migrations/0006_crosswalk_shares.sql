-- Boundary versions (issue 4): the share of a former commune's area that went to each new unit, so that
-- figures still keyed by former communes can be re-keyed (full merges: 1; partial: the area share).
ALTER TABLE gis_ioc.commune_crosswalk ADD COLUMN area_share double precision
    CHECK (area_share IS NULL OR (area_share > 0 AND area_share <= 1));
UPDATE gis_ioc.commune_crosswalk SET area_share = 1 WHERE merge_type = 'full';
