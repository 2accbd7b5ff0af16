-- Laboratory results (already in canonical units). (person_id, measured_at, test) is the table key,
-- so MAX_BY over measured_at is deterministic.

-- cte: labs_features
SELECT person_id,
       MAX_BY(value, measured_at) FILTER (WHERE test = 'fpg') AS fpg_last,
       CAST(MAX(CASE WHEN test = 'fpg' THEN measured_at END) AS DATE) AS fpg_last_date,
       MAX_BY(value, measured_at) FILTER (WHERE test = 'hba1c') AS hba1c_last,
       CAST(MAX(CASE WHEN test = 'hba1c' THEN measured_at END) AS DATE) AS hba1c_last_date,
       COUNT(CASE WHEN test = 'fpg' AND measured_at >= :window_start_ts THEN 1 END) AS fpg_tests_12m,
       AVG(CASE WHEN test = 'fpg' AND measured_at >= :window_start_ts
                THEN CASE WHEN value < :fpg_controlled_below THEN 1.0 ELSE 0.0 END
           END) AS fpg_controlled_share_12m,
       MAX_BY(value, measured_at) FILTER (WHERE test = 'tc') AS tc_last,
       MAX_BY(value, measured_at) FILTER (WHERE test = 'hdl_c') AS hdl_c_last,
       MAX_BY(value, measured_at) FILTER (WHERE test = 'ldl_c') AS ldl_c_last,
       MAX_BY(value, measured_at) FILTER (WHERE test = 'egfr') AS egfr_last,
       MAX_BY(value, measured_at) FILTER (WHERE test = 'uacr') AS uacr_last
FROM labs
WHERE measured_at < :as_of_end AND test IN ('fpg', 'hba1c', 'tc', 'hdl_c', 'ldl_c', 'egfr', 'uacr')
  AND person_id IN (SELECT person_id FROM managed)
GROUP BY person_id
