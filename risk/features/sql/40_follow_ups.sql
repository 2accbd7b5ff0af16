-- Follow-up forms. A visit day counts once even when forms for two conditions were filled that day.
-- The BP (FPG) of a visit is the last reading (result) on the same calendar day.

-- cte: fu_ranked
SELECT person_id, followed_on, smoker, adherence, symptoms, adverse_reaction,
       ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY followed_on DESC, source_row DESC) AS rn
FROM follow_ups
WHERE followed_on <= :as_of

-- cte: fu_summary
SELECT person_id,
       COUNT(DISTINCT CASE WHEN followed_on >= :window_start THEN followed_on END) AS fu_count_12m,
       MAX(followed_on) AS fu_last_date,
       MAX(CASE WHEN rn = 1 THEN smoker END) AS fu_last_smoker,
       MAX(CASE WHEN rn = 1 THEN adherence END) AS fu_last_adherence,
       MAX(CASE WHEN rn = 1 THEN (COALESCE(TRIM(symptoms), '') <> '') END) AS fu_last_danger_symptoms,
       MAX(CASE WHEN rn = 1 THEN adverse_reaction END) AS fu_last_adverse_reaction
FROM fu_ranked
GROUP BY person_id

-- cte: fu_days
SELECT DISTINCT person_id, followed_on FROM fu_ranked

-- cte: fu_day_bp
SELECT d.person_id, d.followed_on,
       MIN_BY(CASE WHEN v.sbp < :sbp_controlled_below AND v.dbp < :dbp_controlled_below THEN 1 ELSE 0 END, v.rn)
           AS controlled
FROM fu_days d
JOIN vitals_ranked v ON v.person_id = d.person_id AND CAST(v.measured_at AS DATE) = d.followed_on
GROUP BY d.person_id, d.followed_on

-- cte: fu_bp_streak
SELECT person_id,
       COALESCE(MIN(CASE WHEN controlled = 1 THEN k END) - 1, COUNT(*)) AS fu_consecutive_uncontrolled_bp
FROM (SELECT person_id, controlled,
             ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY followed_on DESC) AS k
      FROM fu_day_bp) ranked_visits
GROUP BY person_id

-- cte: fu_day_fpg
SELECT d.person_id, d.followed_on,
       MAX_BY(CASE WHEN l.value < :fpg_controlled_below THEN 1 ELSE 0 END, l.measured_at) AS controlled
FROM fu_days d
JOIN labs l ON l.person_id = d.person_id AND l.test = 'fpg' AND CAST(l.measured_at AS DATE) = d.followed_on
GROUP BY d.person_id, d.followed_on

-- cte: fu_fpg_streak
SELECT person_id,
       COALESCE(MIN(CASE WHEN controlled = 1 THEN k END) - 1, COUNT(*)) AS fu_consecutive_uncontrolled_fpg
FROM (SELECT person_id, controlled,
             ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY followed_on DESC) AS k
      FROM fu_day_fpg) ranked_visits
GROUP BY person_id
