// Clinician lookup page: plain JS, no build step, no network beyond this server.
"use strict";

const TEXT = {
  zh: {
    title: "慢病风险分层查询", login: "登录", logout: "退出", username: "用户名", password: "密码",
    bad_login: "用户名或密码不对", locked: "密码错误次数过多，账户已暂时锁定。请稍后再试，或请管理员重置密码。",
    session_ended: "登录已过期，请重新登录", search: "搜索",
    combine_other: "见分层原因",
    search_hint: "姓名、电话、编号或完整身份证号", team_list: "团队优先名单", team_id: "团队编号", show: "显示",
    aggregates: "分层汇总", bad_token: "令牌无效或已过期", no_results: "没有找到符合条件的患者",
    results: "条结果", not_permitted: "无权查看", error: "出错了", tier: "综合分层", tier_rules: "规则分层",
    tier_model: "模型分层", red: "红", yellow: "黄", green: "绿", reasons: "分层原因", age: "年龄",
    sex: "性别", M: "男", F: "女", phone: "电话", national_id: "身份证", next_due: "下次随访",
    overdue: "逾期天数", as_of: "数据日期", last_measurements: "最近测量", history: "分层历史",
    trend: "血压和血糖趋势", sbp: "收缩压", dbp: "舒张压", fpg: "空腹血糖", hba1c: "糖化血红蛋白",
    bmi: "体重指数", conditions: "管理病种", hypertension: "高血压", diabetes_t2: "2型糖尿病",
    name: "姓名", team: "团队", township: "乡镇", total: "合计", loading: "加载中…", no_data: "无",
    threshold: "控制线", date: "日期", lang_switch: "English", person_id: "编号", waist: "腰围",
    tc: "总胆固醇", ldl_c: "低密度脂蛋白", hdl_c: "高密度脂蛋白", egfr: "eGFR", uacr: "尿白蛋白肌酐比",
    chinapar_risk_10y: "China-PAR 十年风险", model_reasons: "模型认为风险较高的原因",
    model_probability: "模型预测12个月不良结局概率", combine_reason: "综合分层说明",
    calls: "随访电话", call_result: "呼叫结果", remove_reason: "移出原因", visit_on: "约定日期",
    called_on: "呼叫日期", note: "备注", record: "记录结果", recorded: "已记录", already: "已记录过",
    call_history: "呼叫记录", dial: "拨打", no_calls: "暂无呼叫记录", invalid: "请检查填写内容",
  },
  en: {
    title: "Chronic-disease risk lookup", login: "Log in", logout: "Log out", username: "User name",
    password: "Password", bad_login: "Wrong user name or password",
    locked: "Too many wrong passwords: the account is locked for a while. Try later or ask for a reset.",
    session_ended: "Session ended, please log in again",
    combine_other: "See the reasons",
    search: "Search", search_hint: "Name, phone, person ID or full national ID", team_list: "Team priority list",
    team_id: "Team ID", show: "Show", aggregates: "Tier counts", bad_token: "Invalid or expired token",
    no_results: "No matching patient", results: "results", not_permitted: "Not permitted", error: "Error",
    tier: "Combined tier", tier_rules: "Rule tier", tier_model: "Model tier", red: "Red", yellow: "Yellow",
    green: "Green", reasons: "Reasons", age: "Age", sex: "Sex", M: "M", F: "F", phone: "Phone",
    national_id: "National ID", next_due: "Next follow-up", overdue: "Days overdue", as_of: "Data as of",
    last_measurements: "Last measurements", history: "Tier history", trend: "BP and glucose trend",
    sbp: "Systolic BP", dbp: "Diastolic BP", fpg: "Fasting glucose", hba1c: "HbA1c", bmi: "BMI",
    conditions: "Conditions", hypertension: "Hypertension", diabetes_t2: "Type 2 diabetes", name: "Name",
    team: "Team", township: "Township", total: "Total", loading: "Loading…", no_data: "none",
    threshold: "target", date: "Date", lang_switch: "中文", person_id: "ID", waist: "Waist",
    tc: "Total cholesterol", ldl_c: "LDL-C", hdl_c: "HDL-C", egfr: "eGFR", uacr: "UACR",
    chinapar_risk_10y: "China-PAR 10-year risk", model_reasons: "What raises the model's risk estimate",
    model_probability: "Model: probability of an adverse outcome in 12 months",
    combine_reason: "How the combined tier was set",
    calls: "Follow-up calls", call_result: "Call result", remove_reason: "Remove reason",
    visit_on: "Visit date", called_on: "Called on", note: "Note", record: "Record result",
    recorded: "Recorded", already: "Already recorded", call_history: "Call history", dial: "Call",
    no_calls: "No calls yet", invalid: "Please check the form",
  },
};
const COLOURS = { red: "#c62828", yellow: "#f2b705", green: "#2e7d32" };
const state = { lang: localStorage.getItem("risk_lang") || "zh", me: null, patient: null, team: null,
                callTypes: null };

const $ = (id) => document.getElementById(id);
const t = (key) => (TEXT[state.lang][key] ?? key);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// The session is an HttpOnly cookie the page cannot read; requests that change something carry the
// session's CSRF token (returned by /api/login) in a header another site cannot set.
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const csrf = sessionStorage.getItem("risk_csrf");
  if (csrf && (options.method || "GET") !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) { showLogin(t("session_ended")); throw new Error("401"); }
  if (!response.ok) {
    const error = new Error(String(response.status));
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((node) => {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  });
  $("lang-toggle").textContent = t("lang_switch");
  if (state.me) renderWho();
  if (state.patient) renderPatient(state.patient);
  if (state.team) renderTeam(state.team);
}

function renderWho() {
  const me = state.me;
  $("who").textContent = `${me.name} · ${me.scope}`;
}

async function login(username, password) {
  const response = await fetch("/api/login", {
    method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) {
    $("login-error").textContent = response.status === 423 ? t("locked") : t("bad_login");
    return;
  }
  sessionStorage.setItem("risk_csrf", (await response.json()).csrf_token);
  await startWorkspace();
}

async function startWorkspace() {
  try {
    state.me = await api("/api/me");
  } catch (error) {
    return;
  }
  $("login").hidden = true;
  $("workspace").hidden = false;
  $("logout").hidden = false;
  renderWho();
  const patientLevel = state.me.patient_level;
  $("search-panel").hidden = !patientLevel;
  $("team-panel").hidden = !patientLevel;
  $("aggregates-panel").hidden = patientLevel;
  if (!patientLevel) { loadAggregates(); return; }
  try { state.callTypes = await api("/api/calls/types"); } catch (error) { state.callTypes = null; }
  if (state.me.team_id) loadTeam(state.me.team_id);
  else $("team-form").hidden = false;
  $("search").focus();
}

async function logout() {
  try { await api("/api/logout", { method: "POST" }); } catch (error) { /* already logged out */ }
  showLogin("");
}

function showLogin(message = "") {
  sessionStorage.removeItem("risk_csrf");
  Object.assign(state, { me: null, patient: null, team: null });
  $("workspace").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("patient").hidden = true;
  $("login-error").textContent = message;
}

function tierDot(tier) { return el("span", { class: `dot ${tier || ""}`, title: t(tier || "no_data") }); }

function summaryLine(p) {
  return [tierDot(p.tier), el("strong", {}, p.name || p.person_id), " ",
          el("span", { class: "muted" }, `${p.person_id} · ${t(p.sex)} · ${Math.floor(p.age ?? 0)} · `
             + `${p.phone_masked || ""} · ${p.national_id_masked || ""}`)];
}

async function runSearch(query) {
  $("search-status").textContent = t("loading");
  $("results").replaceChildren();
  try {
    const data = await api("/api/search", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ q: query }),
    });
    $("search-status").textContent = data.results.length ? `${data.results.length} ${t("results")}`
      : t("no_results");
    $("results").replaceChildren(...data.results.map((p) =>
      el("li", { "data-person": p.person_id, onclick: () => openPatient(p.person_id) }, summaryLine(p))));
  } catch (error) {
    $("search-status").textContent = error.status === 403 ? t("not_permitted") : t("error");
  }
}

async function openPatient(personId) {
  try {
    state.patient = await api(`/api/patients/${encodeURIComponent(personId)}`);
    renderPatient(state.patient);
  } catch (error) {
    const card = $("patient");
    card.className = "card";
    card.hidden = false;
    card.replaceChildren(el("p", { class: "error" }, error.status === 403 ? t("not_permitted") : t("error")));
  }
}

// Measurements arrive as stored (e.g. BMI 25.396567812081624); a clinician reads one decimal.
function shortNumber(value) {
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(1) : value;
}
function reasonText(reason) { return reason[state.lang] || reason.en || reason.zh || t("combine_other"); }

function renderPatient(p) {
  const card = $("patient");
  card.className = `card tier-${p.tier || "unknown"}`;
  card.dataset.tier = p.tier || "";
  card.hidden = false;
  const badge = (tier) => el("span", { class: `tier-badge ${tier || ""}` }, t(tier || "no_data"));
  const fact = (label, value) => el("div", {}, el("span", {}, `${t(label)}:`), value ?? t("no_data"));
  const measurements = Object.entries(p.last_measurements || {})
    .filter(([, m]) => m && m.value !== null && m.value !== undefined)
    .map(([name, m]) => fact(name, `${shortNumber(m.value)}${m.date ? ` (${m.date})` : ""}`));
  card.replaceChildren(
    el("h2", {}, p.name || p.person_id, badge(p.tier)),
    el("div", { class: "facts" },
      fact("person_id", p.person_id), fact("age", Math.floor(p.age ?? 0)), fact("sex", t(p.sex)),
      fact("phone", telLink(p.phone)), fact("national_id", p.national_id_masked),
      fact("conditions", (p.conditions || []).map(t).join("、")),
      fact("tier_rules", t(p.tier_rules || "no_data")), fact("tier_model", t(p.tier_model || "no_data")),
      fact("next_due", p.next_due_on), fact("overdue", p.days_overdue), fact("as_of", p.as_of),
      fact("team", p.team_id)),
    el("h3", {}, t("reasons")),
    el("ul", { class: "reasons" }, (p.reasons || []).map((r) =>
      el("li", { "data-reason": r.id }, tierDot(r.tier), reasonText(r)))),
    el("h3", {}, t("model_reasons")),
    el("div", { class: "facts" },
      fact("model_probability",
           p.model_probability == null ? null : `${(100 * p.model_probability).toFixed(1)}%`),
      fact("combine_reason", p.combine_text ? reasonText(p.combine_text) : null)),
    el("ul", { class: "reasons", id: "model-reasons" }, (p.model_reasons || []).map((r) =>
      el("li", { "data-feature": r.feature }, state.lang === "zh" ? r.zh : r.en))),
    el("h3", {}, t("last_measurements")),
    el("div", { class: "facts" }, measurements),
    el("h3", {}, t("trend")),
    trendChart(p),
    el("h3", {}, t("calls")),
    el("ul", { id: "call-history", class: "reasons" }),
    callForm(p.person_id, () => loadCallHistory(p.person_id)),
    el("h3", {}, t("history")),
    el("table", { id: "history" },
      el("tr", {}, el("th", {}, t("as_of")), el("th", {}, t("tier")), el("th", {}, t("tier_rules")),
         el("th", {}, t("tier_model"))),
      (p.history || []).slice().reverse().map((h) => el("tr", {},
        el("td", {}, h.as_of), el("td", {}, tierDot(h.tier), t(h.tier || "no_data")),
        el("td", {}, t(h.tier_rules || "no_data")), el("td", {}, t(h.tier_model || "no_data"))))),
  );
  loadCallHistory(p.person_id);
  card.scrollIntoView({ block: "start" });
}

// --- follow-up calls: a dial link and a result form (patient card and team list) -----------------------
function telLink(phone) {
  if (!phone) return null;
  return el("a", { class: "tel", href: `tel:${String(phone).replace(/[^0-9+]/g, "")}` }, phone);
}

function label(entry) { return entry ? (entry[state.lang] || entry.en || entry.code) : ""; }

function newResultId() {
  const random = (globalThis.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  return `web-${random}`.slice(0, 64);
}

function callForm(personId, onDone) {
  const types = state.callTypes;
  if (!types) return el("p", { class: "muted" }, "");
  const resultId = newResultId();  // one per form: a retried submit records the result once
  const today = new Date().toISOString().slice(0, 10);
  const field = (key, input) => el("label", { class: `field field-${key}` }, el("span", {}, t(key)), input);
  const choice = (name, entries) => el("select", { name },
    el("option", { value: "" }, "—"), entries.map((e) => el("option", { value: e.code }, label(e))));
  const number = (name, step) => el("input", { name, type: "number", step, inputmode: "decimal" });
  const form = el("form", { class: "call-form", "data-person": personId },
    field("call_result", choice("result", types.result_types)),
    field("remove_reason", choice("remove_reason", types.remove_reasons)),
    field("visit_on", el("input", { name: "visit_on", type: "date" })),
    field("sbp", number("sbp", "1")), field("dbp", number("dbp", "1")), field("fpg", number("fpg", "0.1")),
    field("called_on", el("input", { name: "called_on", type: "date", value: today, max: today })),
    field("note", el("input", { name: "note", maxlength: "500" })),
    el("button", { type: "submit" }, t("record")),
    el("span", { class: "call-status", role: "status" }));
  const show = () => {
    const kind = form.elements.result.value;
    const wanted = types.result_types.find((e) => e.code === kind) || {};
    form.querySelector(".field-remove_reason").hidden = kind !== "removed";
    form.querySelector(".field-visit_on").hidden = !(wanted.requires || []).includes("visit_on");
    for (const r of ["sbp", "dbp", "fpg"]) {
      form.querySelector(`.field-${r}`).hidden = !(wanted.readings || []).includes(r);
    }
  };
  form.elements.result.addEventListener("change", show);
  show();
  form.addEventListener("click", (event) => event.stopPropagation());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    event.stopPropagation();
    const status = form.querySelector(".call-status");
    const value = (name) => form.elements[name].value.trim();
    const body = { result_id: resultId, result: value("result"), called_on: value("called_on") || null,
                   channel: "web" };
    if (!body.result) { status.textContent = t("invalid"); return; }
    if (body.result === "removed") body.remove_reason = value("remove_reason") || null;
    if (value("visit_on")) body.visit_on = value("visit_on");
    for (const r of ["sbp", "dbp", "fpg"]) if (value(r)) body[r] = Number(value(r));
    if (value("note")) body.note = value("note");
    try {
      // the session cookie goes with the request; the CSRF token proves the page itself sent it
      const response = await fetch(`/api/patients/${encodeURIComponent(personId)}/calls`, {
        method: "POST", body: JSON.stringify(body), credentials: "same-origin",
        headers: { "X-CSRF-Token": sessionStorage.getItem("risk_csrf") || "",
                   "Content-Type": "application/json" },
      });
      if (response.status === 401) { showLogin(t("session_ended")); return; }
      if (response.status === 201 || response.status === 200) {
        status.textContent = response.status === 201 ? t("recorded") : t("already");
        form.dataset.recorded = "1";
        form.querySelector("button").disabled = true;
        if (onDone) onDone();
        return;
      }
      status.textContent = response.status === 403 ? t("not_permitted") : t("invalid");
    } catch (error) {
      status.textContent = t("error");
    }
  });
  return form;
}

async function loadCallHistory(personId) {
  const list = $("call-history");
  if (!list) return;
  try {
    const data = await api(`/api/patients/${encodeURIComponent(personId)}/calls`);
    const types = state.callTypes || { result_types: [], remove_reasons: [] };
    const name = (code, entries) => label(entries.find((e) => e.code === code)) || code;
    list.replaceChildren(...(data.calls.length ? data.calls.map((c) => el("li", { "data-result": c.result_id },
      `${c.called_on} · ${name(c.result_type, types.result_types)}`
      + (c.remove_reason ? ` · ${name(c.remove_reason, types.remove_reasons)}` : "")
      + (c.visit_on ? ` · ${t("visit_on")} ${c.visit_on}` : "")
      + (c.sbp ? ` · ${c.sbp}/${c.dbp}` : ""))) : [el("li", { class: "muted" }, t("no_calls"))]));
  } catch (error) {
    list.replaceChildren(el("li", { class: "muted" }, t("error")));
  }
}

// Two stacked panels sharing one time axis: BP (SBP, DBP) and fasting glucose, with the control
// thresholds from the definitions (sent by the API) drawn as dashed lines.
function trendChart(p) {
  const width = 760, panelHeight = 170, left = 48, right = 90, top = 26, gap = 44;
  const height = top + panelHeight * 2 + gap + 28;
  const chart = svg("svg", { id: "trend-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
                             "aria-label": t("trend") });
  const bp = (p.bp_series || []).filter((r) => r.sbp !== null);
  const glucose = (p.glucose_series || []).filter((r) => r.test === "fpg" && r.value !== null);
  const dates = [...bp.map((r) => r.date), ...glucose.map((r) => r.date)].map((d) => Date.parse(d));
  const t0 = dates.length ? Math.min(...dates) : Date.parse(p.as_of) - 365 * 864e5;
  const t1 = Math.max(dates.length ? Math.max(...dates) : 0, Date.parse(p.as_of));
  const x = (d) => left + ((Date.parse(d) - t0) / Math.max(t1 - t0, 1)) * (width - left - right);
  const limits = p.thresholds || { sbp: 140, dbp: 90, fpg: 7.0 };

  function panel(y0, lo, hi, series, lines, unit) {
    const y = (v) => y0 + panelHeight - ((v - lo) / (hi - lo)) * panelHeight;
    chart.append(svg("rect", { x: left, y: y0, width: width - left - right, height: panelHeight,
                               fill: "#fafbfc", stroke: "#d0d7de" }));
    const step = (hi - lo) / 4;
    for (let i = 0; i <= 4; i++) {
      const v = lo + step * i;
      chart.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11,
                                 fill: "#66707a" }, Number.isInteger(v) ? v : v.toFixed(1)));
    }
    chart.append(svg("text", { x: 4, y: y0 - 10, "font-size": 11, fill: "#66707a" }, unit));
    for (const line of lines) {
      chart.append(svg("line", { x1: left, x2: width - right, y1: y(line.value), y2: y(line.value),
                                 stroke: line.colour, "stroke-dasharray": "6 4", "stroke-width": 1.5,
                                 class: "threshold", "data-threshold": line.key }));
      chart.append(svg("text", { x: width - right + 4, y: y(line.value) + 4, "font-size": 11,
                                 fill: line.colour }, `${t(line.key)} ${line.value}`));
    }
    for (const s of series) {
      const points = s.rows.map((r) => `${x(r.date).toFixed(1)},${y(Math.min(Math.max(r[s.field], lo), hi)).toFixed(1)}`);
      if (points.length > 1) {
        chart.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: s.colour,
                                       "stroke-width": 2, class: `series series-${s.key}` }));
      }
      s.rows.forEach((r) => {
        const dot = svg("circle", { cx: x(r.date), cy: y(Math.min(Math.max(r[s.field], lo), hi)), r: 3,
                                    fill: s.colour });
        dot.append(svg("title", {}, `${r.date} ${t(s.key)} ${r[s.field]}`));
        chart.append(dot);
      });
    }
  }

  const bpMax = Math.max(200, ...bp.map((r) => r.sbp));
  panel(top, 40, Math.ceil(bpMax / 20) * 20, [
    { key: "sbp", field: "sbp", rows: bp, colour: "#1e6bb8" },
    { key: "dbp", field: "dbp", rows: bp, colour: "#7b3fa0" },
  ], [
    { key: "sbp", value: limits.sbp, colour: COLOURS.red },
    { key: "dbp", value: limits.dbp, colour: "#d9822b" },
  ], "mmHg");
  const fpgMax = Math.max(14, ...glucose.map((r) => r.value));
  panel(top + panelHeight + gap, 2, Math.ceil(fpgMax / 2) * 2,
        [{ key: "fpg", field: "value", rows: glucose, colour: "#00838f" }],
        [{ key: "fpg", value: limits.fpg, colour: COLOURS.red }], "mmol/L");
  const axisY = top + panelHeight * 2 + gap + 18;
  for (const d of [t0, (t0 + t1) / 2, t1]) {
    const label = new Date(d).toISOString().slice(0, 10);
    chart.append(svg("text", { x: x(label), y: axisY, "text-anchor": "middle", "font-size": 11,
                               fill: "#66707a" }, label));
  }
  chart.append(svg("text", { x: left + 4, y: top + 12, "font-size": 11, fill: "#1e6bb8" },
                   `${t("sbp")} / ${t("dbp")}`));
  chart.append(svg("text", { x: left + 4, y: top + panelHeight + gap + 12, "font-size": 11, fill: "#00838f" },
                   t("fpg")));
  return chart;
}

async function loadTeam(teamId) {
  $("team-status").textContent = t("loading");
  try {
    state.team = await api(`/api/teams/${encodeURIComponent(teamId)}/priority`);
    renderTeam(state.team);
  } catch (error) {
    $("team-list").replaceChildren();
    $("team-status").textContent = error.status === 403 ? t("not_permitted") : t("error");
  }
}

function renderTeam(team) {
  $("team-name").textContent = team.team_id;
  $("team-status").textContent = `${team.patients.length} · ${team.run_id}`;
  $("team-list").replaceChildren(
    el("tr", {}, ["tier", "name", "person_id", "age", "next_due", "overdue", "reasons", "calls"].map((k) =>
      el("th", {}, t(k)))),
    ...team.patients.flatMap((p) => {
      const formRow = el("tr", { class: "call-row", hidden: "" });
      const toggle = (event) => {
        event.stopPropagation();
        if (!formRow.firstChild) {
          formRow.append(el("td", { colspan: "8" }, callForm(p.person_id, null)));
        }
        formRow.hidden = !formRow.hidden;
      };
      const dial = telLink(p.phone);
      if (dial) dial.addEventListener("click", (event) => event.stopPropagation());
      return [el("tr", { class: "row", "data-person": p.person_id, onclick: () => openPatient(p.person_id) },
        el("td", {}, tierDot(p.tier), t(p.tier || "no_data")), el("td", {}, p.name || ""),
        el("td", {}, p.person_id), el("td", {}, Math.floor(p.age ?? 0)), el("td", {}, p.next_due_on || ""),
        el("td", {}, p.days_overdue ?? ""), el("td", {}, p.top_reason ? reasonText(p.top_reason) : ""),
        el("td", { class: "call-cell" }, dial,
           state.callTypes ? el("button", { type: "button", class: "record", onclick: toggle }, t("record"))
             : null)), formRow];
    }),
  );
}

async function loadAggregates() {
  const data = await api("/api/aggregates");
  $("aggregates").replaceChildren(
    el("tr", {}, ["township", "team", "red", "yellow", "green", "total"].map((k) => el("th", {}, t(k)))),
    ...data.by_team.map((row) => {
      const c = row.counts;
      const total = Object.values(c).reduce((a, b) => a + b, 0);
      return el("tr", {}, el("td", {}, row.township_id), el("td", {}, row.team_id),
                el("td", {}, c.red || 0), el("td", {}, c.yellow || 0), el("td", {}, c.green || 0),
                el("td", {}, total));
    }),
  );
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  login($("username").value.trim(), $("password").value);
  $("password").value = "";
});
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = $("search").value.trim();
  if (query) runSearch(query);
});
$("team-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const team = $("team-id").value.trim();
  if (team) loadTeam(team);
});
$("lang-toggle").addEventListener("click", () => {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem("risk_lang", state.lang);
  applyLanguage();
});
$("logout").addEventListener("click", () => logout());

applyLanguage();
if (sessionStorage.getItem("risk_csrf")) startWorkspace();  // still logged in after a reload
