-- One row per managed, living person; columns in the order of definitions/features.yaml.

-- select: features
SELECT m.person_id,
       :as_of AS as_of,
       p.township_id, p.village_id, p.unit_id, p.team_id,
       DATE_DIFF('day', p.birth_date, :as_of) / 365.25 AS age,
       p.sex,
       p.signed_contract,
       p.urban,
       p.family_history_ascvd,
       m.has_hypertension,
       m.has_diabetes_t2,
       m.n_chronic_conditions,
       m.enrolled_on,
       bp.bp_last_sbp,
       bp.bp_last_dbp,
       bp.bp_last_date,
       DATE_DIFF('day', bp.bp_last_date, :as_of) AS bp_days_since_last,
       bp.bp_mean3_sbp,
       bp.bp_mean3_dbp,
       COALESCE(bp.bp_readings_12m, 0) AS bp_readings_12m,
       bp.bp_controlled_share_12m,
       CASE WHEN bp.bp_last_sbp IS NULL THEN NULL
            WHEN bp.bp_last_sbp >= :grade3_sbp OR bp.bp_last_dbp >= :grade3_dbp THEN 3
            WHEN bp.bp_last_sbp >= :grade2_sbp OR bp.bp_last_dbp >= :grade2_dbp THEN 2
            WHEN bp.bp_last_sbp >= :grade1_sbp OR bp.bp_last_dbp >= :grade1_dbp THEN 1
            ELSE 0 END AS bp_grade,
       bp.bp_last_sbp < :sbp_controlled_below AND bp.bp_last_dbp < :dbp_controlled_below AS bp_last_controlled,
       lab.fpg_last,
       lab.fpg_last_date,
       lab.hba1c_last,
       lab.hba1c_last_date,
       COALESCE(lab.fpg_tests_12m, 0) AS fpg_tests_12m,
       lab.fpg_controlled_share_12m,
       COALESCE(fu.fu_count_12m, 0) AS fu_count_12m,
       fu.fu_last_date,
       DATE_DIFF('day', fu.fu_last_date, :as_of) AS fu_days_since_last,
       COALESCE(fu.fu_count_12m, 0) >= :follow_up_standard_per_year AS fu_standardised,
       COALESCE(fbp.fu_consecutive_uncontrolled_bp, 0) AS fu_consecutive_uncontrolled_bp,
       COALESCE(ffpg.fu_consecutive_uncontrolled_fpg, 0) AS fu_consecutive_uncontrolled_fpg,
       fu.fu_last_smoker,
       fu.fu_last_adherence,
       fu.fu_last_danger_symptoms,
       fu.fu_last_adverse_reaction,
       COALESCE(enc.enc_inpatient_12m, 0) AS enc_inpatient_12m,
       COALESCE(enc.enc_bed_days_12m, 0) AS enc_bed_days_12m,
       COALESCE(enc.enc_emergency_12m, 0) AS enc_emergency_12m,
       COALESCE(readm.enc_readmit30_12m, 0) AS enc_readmit30_12m,
       enc.enc_outside_county_share_12m,
       COALESCE(enc.enc_total_cost_12m, 0.0) AS enc_total_cost_12m,
       COALESCE(enc.enc_fund_paid_12m, 0.0) AS enc_fund_paid_12m,
       COALESCE(cx.cx_stroke, FALSE) AS cx_stroke,
       COALESCE(cx.cx_coronary, FALSE) AS cx_coronary,
       COALESCE(cx.cx_heart_failure, FALSE) AS cx_heart_failure,
       COALESCE(cx.cx_ckd, FALSE) AS cx_ckd,
       COALESCE(cx.cx_retinopathy, FALSE) AS cx_retinopathy,
       COALESCE(cx.cx_neuropathy, FALSE) AS cx_neuropathy,
       COALESCE(cx.cx_diabetic_foot, FALSE) AS cx_diabetic_foot,
       COALESCE(cx.cx_peripheral_arterial, FALSE) AS cx_peripheral_arterial,
       COALESCE(cx.cx_count, 0) AS cx_count,
       COALESCE(cx.cx_new_90d, FALSE) AS cx_new_90d,
       COALESCE(med.pdc_antihypertensive_12m, 0.0) AS pdc_antihypertensive_12m,
       COALESCE(med.pdc_antidiabetic_12m, 0.0) AS pdc_antidiabetic_12m,
       COALESCE(med.pdc_statin_12m, 0.0) AS pdc_statin_12m,
       COALESCE(med.antihypertensive_dispensed_12m, FALSE) AS antihypertensive_dispensed_12m,
       lab.tc_last,
       lab.hdl_c_last,
       lab.ldl_c_last,
       lab.egfr_last,
       lab.uacr_last,
       bp.bmi_last,
       bp.waist_last
FROM managed m
JOIN persons p ON p.person_id = m.person_id AND (p.death_date IS NULL OR p.death_date > :as_of)
LEFT JOIN bp_summary bp ON bp.person_id = m.person_id
LEFT JOIN labs_features lab ON lab.person_id = m.person_id
LEFT JOIN fu_summary fu ON fu.person_id = m.person_id
LEFT JOIN fu_bp_streak fbp ON fbp.person_id = m.person_id
LEFT JOIN fu_fpg_streak ffpg ON ffpg.person_id = m.person_id
LEFT JOIN encounter_window enc ON enc.person_id = m.person_id
LEFT JOIN readmissions readm ON readm.person_id = m.person_id
LEFT JOIN complications cx ON cx.person_id = m.person_id
LEFT JOIN medication med ON med.person_id = m.person_id
ORDER BY m.person_id
