-- Follow-up forms. A visit day counts once even when forms for two conditions were filled that day.
-- The last form is the latest followed_on, then the highest source_row. Nullable answers are encoded
-- (NULL -> -1 or '-') inside MAX_BY so that "unknown on the last form" is kept as unknown, the same on
-- every engine. The BP (FPG) of a visit is the last reading (result) of that calendar day; streaks of
-- uncontrolled visits are counted among the visits of the 12-month window. A visit's BP is controlled by
-- the patient's own target (thresholds.yaml bp_controlled / bp_controlled_elderly: < 150/90 from the age
-- of 65, as the rule set's last-reading check), so a count and a last reading never disagree.
-- The answers of the last form (smoker, adherence, danger symptoms, adverse reaction) come from the last form
-- that asked them: a visit fed back as a call result (origin = 'call_result', risk/run/tables.py) counts as
-- a visit (dates, counts, streaks) but asked none of those questions, so it does not blank them. Forms of
-- the input (origin 'input', or no origin column: NULL) are all asked forms.

-- cte: fu_summary
SELECT person_id,
       COUNT(DISTINCT CASE WHEN followed_on >= :window_start THEN followed_on END) AS fu_count_12m,
       MAX(followed_on) AS fu_last_date,
       CASE MAX_BY(CASE WHEN smoker THEN 1 WHEN NOT smoker THEN 0 ELSE -1 END,
                   DATE_DIFF('day', DATE '2000-01-01', followed_on) * 1000000000 + source_row) FILTER (WHERE asked)
            WHEN 1 THEN TRUE WHEN 0 THEN FALSE END AS fu_last_smoker,
       NULLIF(MAX_BY(COALESCE(adherence, '-'),
                     DATE_DIFF('day', DATE '2000-01-01', followed_on) * 1000000000 + source_row) FILTER (WHERE asked), '-')
           AS fu_last_adherence,
       MAX_BY(COALESCE(TRIM(symptoms), '') <> '',
              DATE_DIFF('day', DATE '2000-01-01', followed_on) * 1000000000 + source_row) FILTER (WHERE asked)
           AS fu_last_danger_symptoms,
       CASE MAX_BY(CASE WHEN adverse_reaction THEN 1 WHEN NOT adverse_reaction THEN 0 ELSE -1 END,
                   DATE_DIFF('day', DATE '2000-01-01', followed_on) * 1000000000 + source_row) FILTER (WHERE asked)
            WHEN 1 THEN TRUE WHEN 0 THEN FALSE END AS fu_last_adverse_reaction
FROM (SELECT *, origin IS DISTINCT FROM 'call_result' AS asked FROM follow_ups) f
WHERE followed_on <= :as_of AND person_id IN (SELECT person_id FROM managed)
GROUP BY person_id

-- cte: fu_days
SELECT person_id, followed_on FROM follow_ups
WHERE followed_on >= :window_start AND followed_on <= :as_of AND person_id IN (SELECT person_id FROM managed)

-- cte: fu_day_bp
SELECT d.person_id, d.followed_on,
       MAX_BY(CASE WHEN v.sbp < (CASE WHEN DATE_DIFF('day', p.birth_date, :as_of) / 365.25 >= :elderly_from_age
                                      THEN :sbp_controlled_below_elderly ELSE :sbp_controlled_below END)
                        AND v.dbp < :dbp_controlled_below THEN 1 ELSE 0 END,
              DATE_DIFF('second', TIMESTAMP '2000-01-01 00:00:00', v.measured_at) * 1000000000 + v.source_row)
           AS controlled
FROM fu_days d
JOIN persons p ON p.person_id = d.person_id
JOIN vitals v ON v.person_id = d.person_id AND CAST(v.measured_at AS DATE) = d.followed_on
WHERE v.measured_at >= :window_start_ts AND v.measured_at < :as_of_end
GROUP BY d.person_id, d.followed_on

-- cte: fu_bp_streak
SELECT b.person_id,
       COUNT(CASE WHEN last_ok.followed_on IS NULL OR b.followed_on > last_ok.followed_on THEN 1 END)
           AS fu_consecutive_uncontrolled_bp
FROM fu_day_bp b
LEFT JOIN (SELECT person_id, MAX(followed_on) AS followed_on FROM fu_day_bp WHERE controlled = 1
           GROUP BY person_id) last_ok ON last_ok.person_id = b.person_id
GROUP BY b.person_id

-- cte: fu_day_fpg
SELECT d.person_id, d.followed_on,
       MAX_BY(CASE WHEN l.value < :fpg_controlled_below THEN 1 ELSE 0 END, l.measured_at) AS controlled
FROM fu_days d
JOIN labs l ON l.person_id = d.person_id AND CAST(l.measured_at AS DATE) = d.followed_on
WHERE l.test = 'fpg' AND l.measured_at >= :window_start_ts AND l.measured_at < :as_of_end
GROUP BY d.person_id, d.followed_on

-- cte: fu_fpg_streak
SELECT f.person_id,
       COUNT(CASE WHEN last_ok.followed_on IS NULL OR f.followed_on > last_ok.followed_on THEN 1 END)
           AS fu_consecutive_uncontrolled_fpg
FROM fu_day_fpg f
LEFT JOIN (SELECT person_id, MAX(followed_on) AS followed_on FROM fu_day_fpg WHERE controlled = 1
           GROUP BY person_id) last_ok ON last_ok.person_id = f.person_id
GROUP BY f.person_id
