-- Encounters admitted in the 12-month window. Costs count only once settled on :as_of (discharged on or
-- before it, or outpatient/emergency without a discharge date): a later settlement is not yet known.

-- cte: inpatient_stays
SELECT person_id, admitted_on, discharged_on,
       LAG(discharged_on) OVER (PARTITION BY person_id ORDER BY admitted_on, source_row) AS previous_discharged_on
FROM encounters
WHERE setting = 'inpatient' AND admitted_on <= :as_of

-- cte: readmissions
SELECT person_id,
       COUNT(CASE WHEN admitted_on >= :window_start
                   AND DATE_DIFF('day', previous_discharged_on, admitted_on) BETWEEN 0 AND :readmission_days
                  THEN 1 END) AS enc_readmit30_12m
FROM inpatient_stays
GROUP BY person_id

-- cte: encounter_window
SELECT person_id,
       COUNT(CASE WHEN setting = 'inpatient' THEN 1 END) AS enc_inpatient_12m,
       SUM(CASE WHEN setting = 'inpatient'
                THEN GREATEST(DATE_DIFF('day', admitted_on,
                                        LEAST(COALESCE(discharged_on, :as_of), :as_of)), 1) END) AS enc_bed_days_12m,
       COUNT(CASE WHEN setting = 'emergency' THEN 1 END) AS enc_emergency_12m,
       AVG(CASE WHEN facility_level = 'outside_county' THEN 1.0 ELSE 0.0 END) AS enc_outside_county_share_12m,
       SUM(CASE WHEN COALESCE(discharged_on, admitted_on) <= :as_of THEN total_cost END) AS enc_total_cost_12m,
       SUM(CASE WHEN COALESCE(discharged_on, admitted_on) <= :as_of THEN fund_paid END) AS enc_fund_paid_12m
FROM encounters
WHERE admitted_on >= :window_start AND admitted_on <= :as_of
GROUP BY person_id
