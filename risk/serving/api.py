"""The clinician lookup API and web page (FastAPI). `create_app(store_url)` is what `risk serve` runs.

401: missing, malformed, unknown or revoked token. 403: authenticated but not allowed, including a patient
or team outside the caller's scope; for scoped callers a non-existent patient gets the very same 403 body so
the answer never reveals whether someone exists. County administrators get 404 for a patient that does not
exist. Every patient-level read is audited before the data leaves the server.
"""


import hmac
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi import Path as FastAPIPath
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from swagger_ui_bundle import swagger_ui_path

from risk import privacy
from risk.serving import call_results, hardening, queries
from risk.serving.audit import AuditWriter, audit_rows
from risk.serving.auth import (
    AccountLocked,
    User,
    authenticate,
    check_password,
    end_session,
    session_user,
    start_session,
)
from risk.serving.models import (
    Aggregates,
    CallResultIn,
    ErrorDetail,
    Health,
    LoginRequest,
    LoginResult,
    Me,
    PatientView,
    PriorityList,
    SearchRequest,
    SearchResult,
    Workload,
)
from risk.serving.store import open_store

STATIC_DIR = Path(str(resources.files("risk.serving") / "static"))
NOT_PERMITTED = "not permitted"
# Threads per worker process for the sync endpoints (AnyIO's default is 40) and one pooled store connection
# for each of them plus the audit writer: with more threads than pooled connections every request past the
# pool opens and closes a connection of its own (on SQLite that repeats the pragmas; issue 19 profile).
SERVING_THREADS = 16
TOKEN_CACHE_SECONDS = 10.0  # a revoked token stops working within this long (saves a query per request)
SESSION_COOKIE = "risk_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_bearer = HTTPBearer(auto_error=False)


class RedactAccessLog(logging.Filter):
    """Access-log lines keep method, route shape and status, never query strings or person IDs."""

    _PERSON_PATH = re.compile(r"(/api/patients/)[^?]+|(/api/teams/)[^?]+?(?=/priority(?:\?|$)|\?|$)")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            path = record.args[2].split("?", 1)[0]
            args = list(record.args)
            args[2] = self._PERSON_PATH.sub(lambda m: (m.group(1) or m.group(2)) + "…", path)
            record.args = tuple(args)
        return True


def install_log_redaction() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())


def _json(payload: Any) -> Response:
    """Patient payloads are built by our own queries: serialise directly instead of re-validating them
    through the response model (which still documents them in the OpenAPI spec)."""
    body = json.dumps(payload, default=str, ensure_ascii=False, separators=(",", ":"))
    return Response(content=body, media_type="application/json", headers={"Cache-Control": "no-store"})


COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorDetail, "description": "A request body that is not UTF-8 JSON"},
    401: {"model": ErrorDetail, "description": "Missing, malformed, unknown or revoked token"},
    403: {"model": ErrorDetail, "description": "Not permitted for this user or scope"},
    404: {"model": ErrorDetail, "description": "Not found (also a path no route matches, e.g. an ID with a "
                                               "line break)"},
    413: {"model": ErrorDetail, "description": f"Request body over {hardening.MAX_BODY_BYTES:,} bytes"},
    503: {"model": ErrorDetail, "description": "No run has been published yet"},
}


def _utcnow():  # noqa: ANN202
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _denied() -> HTTPException:
    return HTTPException(status_code=403, detail=NOT_PERMITTED)


STORE_URL_ENV = "RISK_STORE_URL"


def create_app_from_env() -> FastAPI:
    """App factory for multi-process serving (`risk serve --workers N`): uvicorn starts each worker process
    from an import string, so the store URL travels in the environment."""
    return create_app(os.environ[STORE_URL_ENV])


def create_app(store_url: str) -> FastAPI:
    privacy.require_key()  # searches hash a typed national ID: never with a key nobody chose
    engine = open_store(store_url, pool_size=SERVING_THREADS + 2)
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = SERVING_THREADS
        yield
        audit_writer.close()
        engine.dispose()

    app = FastAPI(
        title="risk clinician lookup", version="1",
        description="Red / yellow / green tiers of patients under chronic-disease management, within the "
                    "caller's scope. People log in with a password (POST /api/login sets a session "
                    "cookie); machine clients send a bearer token. Both are created with `risk users add`.",
        lifespan=lifespan, openapi_url="/api/openapi.json", docs_url=None, redoc_url=None,
        responses=COMMON_RESPONSES,
    )
    hardening.install(app)
    app.state.engine = engine
    audit_writer = AuditWriter(engine)
    inline_reads = engine.dialect.name == "sqlite"
    token_cache: dict[str, tuple[float, User]] = {}

    async def cached_authenticate(token: str) -> User | None:
        now = time.monotonic()
        hit = token_cache.get(token)
        if hit and now - hit[0] < TOKEN_CACHE_SECONDS:
            return hit[1]
        user = await run_in_threadpool(authenticate, engine, token)
        if user is not None:
            if len(token_cache) > 10_000:
                token_cache.clear()
            token_cache[token] = (now, user)
        return user

    # Async dependencies: a cached token costs no thread hop. Cache-Control: no-store is set on every /api/
    # response by the hardening middleware, so the dependencies need no Response of their own to merge.
    async def authenticated(request: Request, credentials: HTTPAuthorizationCredentials | None) -> User:
        """A bearer token (machine clients) or the session cookie of a logged-in person. With the cookie,
        a request that changes something must carry the session's CSRF token in X-CSRF-Token."""
        user = await cached_authenticate(credentials.credentials) if credentials else None
        cookie = request.cookies.get(SESSION_COOKIE) if credentials is None else None
        if user is None and cookie:
            found = await run_in_threadpool(session_user, engine, cookie)
            if found is not None:
                user, csrf = found
                if request.method not in SAFE_METHODS and not hmac.compare_digest(
                    request.headers.get(CSRF_HEADER, ""), csrf
                ):
                    raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
        if user is None:
            raise HTTPException(status_code=401, detail="missing or invalid token",
                                headers={"WWW-Authenticate": "Bearer"})
        return user

    async def current_user(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> User:
        return await authenticated(request, credentials)

    # one dependency level, not clinician -> current_user -> bearer: each level costs FastAPI a solve per
    # request (issue 19 profile of the lookup)
    async def clinician(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> User:
        user = await authenticated(request, credentials)
        if not user.patient_level:  # a refused read is audited too, with what was asked for
            params = request.path_params
            endpoint = {"patient": "patient", "search": "search", "priority": "priority",
                        "record_call": "calls", "calls_of": "calls"}.get(
                request.scope["route"].name, "other")
            await audit_writer.write_async(
                audit_rows(user, endpoint, [params.get("person_id")], None, "denied", params.get("team_id")))
            raise _denied()
        return user

    def audited(user: User, endpoint: str, person_ids: list[Any], run_id: str | None, outcome: str = "ok",
                team_id: str | None = None) -> None:
        audit_writer.write(audit_rows(user, endpoint, person_ids, run_id, outcome, team_id))

    def read(fn: Any, *args: Any) -> Any:
        try:
            with engine.begin() as conn:
                return fn(conn, *args)
        except queries.NoCurrentRun as exc:
            raise HTTPException(status_code=503, detail="no run has been published yet") from exc

    async def quick_read(fn: Any, *args: Any) -> Any:
        """A read of a few rows by key (the patient view, a search). SQLite answers it in well under a
        millisecond from the page cache, less than the hop to a worker thread and back costs, so it runs
        right here on the event loop (readers never wait for writers under WAL); PostgreSQL's network
        round trips go to the thread pool as before."""
        if inline_reads:
            return read(fn, *args)
        return await run_in_threadpool(read, fn, *args)

    async def audited_async(user: User, endpoint: str, person_ids: list[Any], run_id: str | None,
                            outcome: str = "ok", team_id: str | None = None) -> None:
        await audit_writer.write_async(audit_rows(user, endpoint, person_ids, run_id, outcome, team_id))

    @app.get("/api/health", response_model=Health, tags=["service"])
    def health() -> Health:
        with engine.connect() as conn:
            run = queries.current_run(conn)
        if run is None:
            return Health(status="empty")
        return Health(status="ok", run_id=run["run_id"], as_of=run["as_of"], published_at=run["published_at"],
                      persons=run["n_persons"])

    @app.post("/api/login", response_model=LoginResult, tags=["service"],
              responses={401: {"description": "Wrong user name or password"},
                         423: {"description": "Locked after too many wrong passwords"}})
    def login(body: LoginRequest, request: Request, response: Response) -> LoginResult:
        """Log in with a user name and password: sets the HttpOnly session cookie and returns the CSRF
        token the page sends back in X-CSRF-Token on POST requests."""
        try:
            user = check_password(engine, body.username, body.password)
        except AccountLocked as exc:
            raise HTTPException(status_code=423, detail="account locked after too many wrong passwords; "
                                f"try again after {exc.until:%H:%M} UTC or ask for a reset") from None
        if user is None:
            raise HTTPException(status_code=401, detail="wrong user name or password")
        session = start_session(engine, user)
        response.set_cookie(
            SESSION_COOKIE, session.token, httponly=True, samesite="strict", path="/",
            secure=request.url.scheme == "https",
            max_age=int((session.expires_at - _utcnow()).total_seconds()),
        )
        response.headers["Cache-Control"] = "no-store"
        return LoginResult(csrf_token=session.csrf_token, name=user.name, role=user.role)

    @app.post("/api/logout", status_code=204, tags=["service"])
    def logout(request: Request, user: Annotated[User, Depends(current_user)]) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            end_session(engine, cookie)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/api/me", response_model=Me, tags=["service"])
    def me(user: Annotated[User, Depends(current_user)]) -> Me:
        return Me(name=user.name, role=user.role, team_id=user.team_id, township_id=user.township_id,
                  scope=user.scope_label(), patient_level=user.patient_level)

    @app.post("/api/search", response_model=SearchResult, tags=["patients"])
    async def search(body: SearchRequest, user: Annotated[User, Depends(clinician)]) -> Any:
        # POST keeps names and phone numbers out of URLs, browser history and proxy logs.
        run_id, results = await quick_read(queries.search, user, body.q)
        await audited_async(user, "search", [r["person_id"] for r in results], run_id)
        return _json({"run_id": run_id, "results": results})

    @app.get("/api/teams/{team_id:path}/priority", response_model=PriorityList, tags=["patients"],
             responses={404: {"model": ErrorDetail, "description": "No such team (county administrators)"}})
    def priority(team_id: str, user: Annotated[User, Depends(clinician)]) -> Any:
        def scoped_list(conn: Any) -> tuple[str, list[dict]] | None:
            if not queries.team_in_scope(conn, user, team_id):
                return None
            return queries.team_priority_list(conn, user, team_id)

        found = read(scoped_list)
        if found is None:
            if user.role == "county_admin":
                audited(user, "priority", [], None, "not_found", team_id)
                raise HTTPException(status_code=404, detail="no such team in the current run")
            audited(user, "priority", [], None, "denied", team_id)
            raise _denied()
        run_id, patients = found
        audited(user, "priority", [p["person_id"] for p in patients], run_id, team_id=team_id)
        return _json({"run_id": run_id, "team_id": team_id, "patients": patients})

    @app.post("/api/patients/{person_id:path}/calls", tags=["calls"], status_code=201,
              responses={200: {"description": "Already recorded (same result_id, same content)"},
                         403: {"description": "Out of scope, or (for scoped users) not found"},
                         404: {"model": ErrorDetail, "description": "Not found (county administrators only)"},
                         409: {"description": "result_id already used for a different result"},
                         422: {"description": "Invalid result (reason code in detail)"}})
    def record_call(person_id: str, body: CallResultIn, user: Annotated[User, Depends(clinician)]) -> Any:
        raw = {**body.model_dump(exclude={"channel"}), "person_id": person_id}
        outcome = call_results.record_results(engine, user, [raw], source=body.channel)
        if outcome.quarantined:
            code = outcome.quarantined[0][1]
            if code in ("out_of_scope", "unknown_person"):
                if user.role == "county_admin":
                    raise HTTPException(status_code=404, detail="no such patient in the current run")
                raise _denied()
            if code == "result_id_conflict":
                raise HTTPException(status_code=409, detail=code)
            raise HTTPException(status_code=422, detail=code)
        stored = (outcome.accepted or outcome.duplicates)[0]
        answer = _json({"run_id": outcome.run_id, "recorded": bool(outcome.accepted), **stored.as_row()})
        answer.status_code = 201 if outcome.accepted else 200
        return answer

    @app.get("/api/calls/types", tags=["calls"])
    def call_types(user: Annotated[User, Depends(clinician)]) -> Any:
        """Result types and removal reasons with their Chinese and English labels (call_results.yaml)."""
        from risk.calls.definitions import call_definitions

        defs = call_definitions()
        def pick(entries: dict) -> list[dict]:
            return [{"code": code, "zh": e["zh"], "en": e["en"], "requires": e.get("requires", []),
                     "readings": e.get("readings", [])} for code, e in entries.items()]
        return {"version": defs.version, "result_types": pick(defs.result_types),
                "remove_reasons": pick(defs.remove_reasons)}

    @app.get("/api/patients/{person_id:path}/calls", tags=["calls"])
    def calls_of(person_id: str, user: Annotated[User, Depends(clinician)]) -> Any:
        def scoped(conn: Any) -> tuple[str | None, list[dict] | None]:
            run_id, ok = call_results.patient_in_scope(conn, user, person_id)
            return run_id, call_results.call_history(conn, person_id) if ok else None

        run_id, history = read(scoped)
        if history is None:
            audited(user, "calls", [person_id], run_id, "denied")
            raise _denied()
        audited(user, "calls", [person_id], run_id)
        return _json({"run_id": run_id, "person_id": person_id, "calls": history})

    @app.get("/api/teams/{team_id:path}/workload", response_model=Workload, tags=["aggregates"],
             responses={404: {"model": ErrorDetail, "description": "No such team (county administrators)"}})
    def workload(team_id: str, user: Annotated[User, Depends(current_user)]) -> Any:
        """Patients due and reds due per week against the team's capacity (counts, no patient)."""
        def scoped(conn: Any) -> tuple[str, dict] | None:
            if not queries.team_in_scope(conn, user, team_id):
                return None
            return queries.team_workload(conn, user, team_id)

        found = read(scoped)
        if found is None:
            if user.role == "county_admin":
                raise HTTPException(status_code=404, detail="no such team in the current run")
            raise _denied()
        run_id, view = found
        return _json({"run_id": run_id, "team_id": team_id, **view})

    @app.get("/api/cascade", tags=["aggregates"])
    def cascade(user: Annotated[User, Depends(current_user)]) -> Any:
        """The current run's monthly call cascade (suppressed counts) for analysts and the county."""
        if user.role not in ("analyst", "county_admin"):
            raise _denied()
        return read(queries.call_cascade, user)

    # after the /calls routes: a person_id may hold '/', so this path route would take theirs
    @app.get("/api/patients/{person_id:path}", response_model=PatientView, tags=["patients"],
             responses={403: {"description": "Out of scope, or (for scoped users) not found"},
                        404: {"model": ErrorDetail, "description": "Not found (county administrators only)"}})
    async def patient(person_id: str, user: Annotated[User, Depends(clinician)]) -> Any:
        run_id, view = await quick_read(queries.patient_view, user, person_id)
        if view is None:
            if user.role == "county_admin":
                await audited_async(user, "patient", [person_id], run_id, "not_found")
                raise HTTPException(status_code=404, detail="no such patient in the current run")
            await audited_async(user, "patient", [person_id], run_id, "denied")
            raise _denied()
        await audited_async(user, "patient", [person_id], run_id)
        return _json(view)

    @app.get("/api/aggregates", response_model=Aggregates, tags=["aggregates"])
    def aggregates(user: Annotated[User, Depends(current_user)]) -> Any:
        return read(queries.aggregates, user)

    @app.get("/api/capitation/{year}", tags=["aggregates"],
             responses={403: {"description": "Team roles"},
                        404: {"model": ErrorDetail, "description": "No table stored"}})
    def capitation(year: Annotated[int, FastAPIPath(ge=1900, le=2200)],
                   user: Annotated[User, Depends(current_user)]) -> Any:
        """Capitation (小包干) budget vs spend, O/E and projected surplus per township (aggregates only):
        analysts and county administrators see every township, township users their own."""
        from risk.serving.capitation import read_capitation

        try:
            with engine.begin() as conn:
                found = read_capitation(conn, user, year)
        except PermissionError as exc:
            raise _denied() from exc
        if found is None:
            raise HTTPException(status_code=404, detail=f"no capitation table stored for {year}")
        return _json(found)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get(hardening.DOCS_PREFIX, include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html", headers={"Cache-Control": "no-cache"})

    # Swagger UI from the swagger-ui-bundle package: no CDN, so the page works offline and CSP stays 'self'
    app.mount(f"{hardening.DOCS_PREFIX}/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
