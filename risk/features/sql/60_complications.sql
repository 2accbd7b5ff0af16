-- Complications: any primary or secondary diagnosis on or before :as_of that starts with a prefix of
-- definitions/complications.csv (table vs_complications). Prefixes are matched by an equi-join on the
-- first three characters and then the full prefix, so the join stays a hash join.

-- cte: encounter_dx
SELECT person_id, admitted_on, primary_dx AS dx
FROM encounters
WHERE admitted_on <= :as_of AND person_id IN (SELECT person_id FROM managed)
UNION ALL
SELECT person_id, admitted_on, TRIM(dx) AS dx
FROM (SELECT person_id, admitted_on, UNNEST(STRING_SPLIT(secondary_dx, ';')) AS dx
      FROM encounters
      WHERE admitted_on <= :as_of AND secondary_dx IS NOT NULL AND secondary_dx <> ''
        AND person_id IN (SELECT person_id FROM managed)) secondary

-- cte: complication_first
SELECT d.person_id, c.cx_group, MIN(d.admitted_on) AS first_on
FROM encounter_dx d
JOIN vs_complications c ON SUBSTR(d.dx, 1, 3) = c.prefix3 AND SUBSTR(d.dx, 1, c.prefix_len) = c.icd10_prefix
GROUP BY d.person_id, c.cx_group

-- cte: complications
SELECT person_id,
       MAX(CASE WHEN cx_group = 'stroke' THEN 1 ELSE 0 END) = 1 AS cx_stroke,
       MAX(CASE WHEN cx_group = 'coronary' THEN 1 ELSE 0 END) = 1 AS cx_coronary,
       MAX(CASE WHEN cx_group = 'heart_failure' THEN 1 ELSE 0 END) = 1 AS cx_heart_failure,
       MAX(CASE WHEN cx_group = 'ckd' THEN 1 ELSE 0 END) = 1 AS cx_ckd,
       MAX(CASE WHEN cx_group = 'retinopathy' THEN 1 ELSE 0 END) = 1 AS cx_retinopathy,
       MAX(CASE WHEN cx_group = 'neuropathy' THEN 1 ELSE 0 END) = 1 AS cx_neuropathy,
       MAX(CASE WHEN cx_group = 'diabetic_foot' THEN 1 ELSE 0 END) = 1 AS cx_diabetic_foot,
       MAX(CASE WHEN cx_group = 'peripheral_arterial' THEN 1 ELSE 0 END) = 1 AS cx_peripheral_arterial,
       COUNT(*) AS cx_count,
       MAX(first_on) >= :new_complication_start AS cx_new_90d
FROM complication_first
GROUP BY person_id
