-- Encounters admitted in the 12-month window. Costs count only once settled on :as_of (discharged on or
-- before it, or outpatient/emergency without a discharge date): a later settlement is not yet known.
-- A readmission is an inpatient admission in the window within :readmission_days days after the discharge
-- of another inpatient stay (that discharge is before the admission, hence on or before :as_of).

-- cte: inpatient_stays
SELECT encounter_id, person_id, admitted_on, discharged_on
FROM encounters
WHERE setting = 'inpatient' AND admitted_on <= :as_of AND person_id IN (SELECT person_id FROM managed)

-- cte: readmissions
SELECT a.person_id, COUNT(DISTINCT a.encounter_id) AS enc_readmit30_12m
FROM inpatient_stays a
JOIN inpatient_stays b
  ON b.person_id = a.person_id AND b.encounter_id <> a.encounter_id
 AND b.discharged_on <= a.admitted_on AND DATE_DIFF('day', b.discharged_on, a.admitted_on) <= :readmission_days
WHERE a.admitted_on >= :window_start
GROUP BY a.person_id

-- cte: encounter_window
SELECT person_id,
       COUNT(CASE WHEN setting = 'inpatient' THEN 1 END) AS enc_inpatient_12m,
       SUM(CASE WHEN setting = 'inpatient'
                THEN GREATEST(DATE_DIFF('day', admitted_on,
                                        LEAST(COALESCE(discharged_on, :as_of), :as_of)), 1) END) AS enc_bed_days_12m,
       COUNT(CASE WHEN setting = 'emergency' THEN 1 END) AS enc_emergency_12m,
       AVG(CASE WHEN facility_level = 'outside_county' THEN 1.0 ELSE 0.0 END) AS enc_outside_county_share_12m,
       -- summed as cents in DECIMAL: a DOUBLE sum depends on the threads' order, so re-runs differed in the last bits
       CAST(SUM(CASE WHEN COALESCE(discharged_on, admitted_on) <= :as_of
                     THEN CAST(total_cost AS DECIMAL(18, 2)) END) AS DOUBLE) AS enc_total_cost_12m,
       CAST(SUM(CASE WHEN COALESCE(discharged_on, admitted_on) <= :as_of
                     THEN CAST(fund_paid AS DECIMAL(18, 2)) END) AS DOUBLE) AS enc_fund_paid_12m
FROM encounters
WHERE admitted_on >= :window_start AND admitted_on <= :as_of AND person_id IN (SELECT person_id FROM managed)
GROUP BY person_id
