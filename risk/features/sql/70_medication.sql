-- Proportion of days covered (PDC) per drug-class group over the 365-day window. Each dispensing covers
-- dispensed_on .. dispensed_on + days_supply - 1, clipped to the window; overlapping supplies are merged
-- (union), not shifted. Sorted by start, a dispensing adds only the days after the furthest end seen so
-- far, so one running-max window computes the union (the order among equal starts does not change the sum).
-- Dispensings of one group starting the same day are merged first (the longest supply covers the others):
-- the union is the same and the window, the costly step, sorts about half the rows on the own county.
-- Only managed persons get a feature row, so only their dispensings enter the (costly) window.

-- cte: dispensing_intervals
SELECT r.person_id, g.pdc_group,
       GREATEST(r.dispensed_on, :window_start) AS start_on,
       LEAST(DATE_ADD(r.dispensed_on, CAST(r.days_supply - 1 AS INTEGER)), :as_of) AS end_on
FROM prescriptions r
JOIN vs_pdc_classes g ON SUBSTR(r.atc_code, 1, 3) = g.prefix3 AND SUBSTR(r.atc_code, 1, g.prefix_len) = g.atc_prefix
WHERE r.dispensed_on <= :as_of AND DATE_ADD(r.dispensed_on, CAST(r.days_supply - 1 AS INTEGER)) >= :window_start
  AND r.person_id IN (SELECT person_id FROM managed)

-- cte: dispensing_new_days
SELECT person_id, pdc_group,
       GREATEST(DATE_DIFF('day', GREATEST(start_on, DATE_ADD(COALESCE(covered_until, DATE_ADD(start_on, -1)), 1)),
                          end_on) + 1, 0) AS new_days
FROM (SELECT person_id, pdc_group, start_on, end_on,
             MAX(end_on) OVER (PARTITION BY person_id, pdc_group ORDER BY start_on
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS covered_until
      FROM (SELECT person_id, pdc_group, start_on, MAX(end_on) AS end_on
            FROM dispensing_intervals
            GROUP BY person_id, pdc_group, start_on) merged) ordered

-- cte: medication
SELECT person_id,
       SUM(CASE WHEN pdc_group = 'antihypertensive' THEN new_days ELSE 0 END) / :window_days AS pdc_antihypertensive_12m,
       SUM(CASE WHEN pdc_group = 'antidiabetic' THEN new_days ELSE 0 END) / :window_days AS pdc_antidiabetic_12m,
       SUM(CASE WHEN pdc_group = 'statin' THEN new_days ELSE 0 END) / :window_days AS pdc_statin_12m,
       MAX(CASE WHEN pdc_group = 'antihypertensive' THEN 1 ELSE 0 END) = 1 AS antihypertensive_dispensed_12m
FROM dispensing_new_days
GROUP BY person_id
