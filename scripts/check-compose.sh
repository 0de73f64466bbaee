#!/usr/bin/env bash
# check-compose.sh — validate docker-compose.yml and the files it mounts,
# without a Docker engine. Exits non-zero on the first problem.
#
#   1. the Compose model, with the first of these tools found:
#      - `docker compose config` (the Compose v2 plugin), when installed;
#      - compose-go's validator, `go run github.com/compose-spec/compose-go/v2/cmd@v2.16.2`
#        (the library inside `docker compose` v2; fetched from the Go module
#        proxy into the module cache, outside this module: go.mod is untouched);
#      - `docker-compose config` (Compose 1.29, Debian's docker-compose package,
#        installed with apt-get when missing), when there is no Go either.
#      None of them needs a Docker engine to parse, interpolate and validate.
#   2. cross-references the tools above may leave out: every named volume and
#      network is declared, every depends_on names a service, every
#      bind-mounted file or folder and every build context exists (Docker would
#      otherwise create an empty folder where a mounted file was expected)
#   3. deploy/prometheus.yml with `promtool check config`, when promtool is
#      installed (the rule file it loads is ./alerting/rules.yml)
#   4. deploy/fanout.compose.yaml with `fanout validate` (built with go run,
#      or FANOUT_BIN), with the environment the worker service gives it
#
#   COMPOSE_FILE_TO_CHECK  file to check            (docker-compose.yml)
#   COMPOSE_CHECKER        force a tool: plugin | compose-go | v1
#   COMPOSE_GO_VERSION     compose-go version       (v2.16.2)
#   CHECK_COMPOSE_NO_INSTALL=1  never run apt-get
#   FANOUT_BIN             fanout binary for step 4 (go run . when unset)
#   SKIP_FANOUT_VALIDATE=1 skip step 4
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FILE=${COMPOSE_FILE_TO_CHECK:-docker-compose.yml}

say() { printf 'check-compose: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[[ -f $FILE ]] || fail "$FILE not found"

# ---------------------------------------------------------------- 1. the model
COMPOSE_GO_VERSION=${COMPOSE_GO_VERSION:-v2.16.2}
checker=${COMPOSE_CHECKER:-}
if [[ -z $checker ]]; then
	if docker compose version >/dev/null 2>&1; then
		checker=plugin
	elif command -v go >/dev/null; then
		checker=compose-go
	else
		checker=v1
	fi
fi

rendered=$(mktemp)
errs=$(mktemp)
noenv=$(mktemp)
trap 'rm -f "$rendered" "$errs" "$noenv"' EXIT

case $checker in
plugin)
	say "using $(docker compose version | head -n 1)"
	docker compose --project-directory "$ROOT" -f "$FILE" --env-file "$noenv" \
		config --format json >"$rendered" 2>"$errs" || {
		cat "$errs" >&2
		fail "$FILE is not a valid Compose file"
	}
	;;
compose-go)
	say "using compose-go $COMPOSE_GO_VERSION (go run; first run downloads it from the Go module proxy)"
	# a module path@version runs outside this module; GOFLAGS cleared so a
	# -mod setting of the caller does not apply to it
	GOFLAGS='' go run "github.com/compose-spec/compose-go/v2/cmd@$COMPOSE_GO_VERSION" \
		--format json "$FILE" >"$rendered" 2>"$errs" || {
		cat "$errs" >&2
		echo >&2
		fail "$FILE is not a valid Compose file"
	}
	;;
v1)
	if ! command -v docker-compose >/dev/null; then
		if [[ ${CHECK_COMPOSE_NO_INSTALL:-0} == 1 ]] || ! command -v apt-get >/dev/null; then
			fail "no Compose tool: install Go, Docker's compose plugin or Debian's docker-compose package"
		fi
		say "installing Debian's docker-compose package (Compose 1.29, used here only to parse and validate)"
		export DEBIAN_FRONTEND=noninteractive
		sudo=()
		[[ $(id -u) == 0 ]] || sudo=(sudo)
		if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1; then
			"${sudo[@]}" apt-get update -qq
			"${sudo[@]}" apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
		fi
	fi
	say "using $(docker-compose version 2>/dev/null | head -n 1)"
	docker-compose --project-directory "$ROOT" -f "$FILE" --env-file "$noenv" \
		config >"$rendered" 2>"$errs" || {
		cat "$errs" >&2
		fail "$FILE is not a valid Compose file"
	}
	;;
*) fail "COMPOSE_CHECKER must be plugin, compose-go or v1, not $checker" ;;
esac
say "ok: $FILE is a valid Compose file"

# ------------------------------------------------------ 2. cross-references
# The rendered model has absolute host paths. JSON from the first two tools;
# YAML from Compose 1.29, whose Debian python3 has PyYAML.
py=python3
if [[ $checker == v1 ]]; then py=/usr/bin/python3; fi
"$py" - "$rendered" "$ROOT" <<'PY'
import json, os, sys
text = open(sys.argv[1]).read()
if text.lstrip().startswith("{"):
    model = json.loads(text)
else:
    import yaml
    model = yaml.safe_load(text)
os.chdir(sys.argv[2])
services = model.get("services") or {}
named_volumes = set((model.get("volumes") or {}).keys())
networks = set((model.get("networks") or {}).keys()) | {"default"}
problems = []
for name, svc in services.items():
    where = f"services.{name}"
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            kind, src = v.get("type"), v.get("source") or ""
        else:  # short syntax, as Compose 1.29 renders it
            src = v.split(":", 1)[0]
            kind = "bind" if src.startswith(("/", ".", "~")) else "volume"
        if kind == "bind":
            if not os.path.exists(os.path.expanduser(src)):
                problems.append(f"{where}.volumes: {src} does not exist")
        elif kind == "volume" and src and src not in named_volumes:
            problems.append(f"{where}.volumes: named volume {src} is not declared under volumes")
    deps = svc.get("depends_on") or {}
    for dep in (deps if isinstance(deps, (list, dict)) else []):
        if dep not in services:
            problems.append(f"{where}.depends_on: {dep} is not a service")
    nets = svc.get("networks") or {}
    for net in (nets if isinstance(nets, (list, dict)) else []):
        if net not in networks:
            problems.append(f"{where}.networks: {net} is not declared under networks")
    build = svc.get("build")
    if build:
        ctx = build if isinstance(build, str) else build.get("context", ".")
        df = "Dockerfile" if isinstance(build, str) else build.get("dockerfile") or "Dockerfile"
        df = df if os.path.isabs(df) else os.path.join(ctx, df)
        if not os.path.isdir(ctx):
            problems.append(f"{where}.build.context: {ctx} is not a folder")
        elif not os.path.isfile(df):
            problems.append(f"{where}.build.dockerfile: {df} does not exist")
for p in problems:
    print("check-compose: FAIL: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
say "ok: volumes, networks, depends_on, bind-mounted paths and build contexts all resolve"

# ------------------------------------------------------------ 3. prometheus.yml
if [[ -f deploy/prometheus.yml ]]; then
	if command -v promtool >/dev/null; then
		tmp=$(mktemp --suffix=.yml)
		# the container path of the rule file, pointed back at the repository
		sed "s#/etc/prometheus/rules/rules.yml#$ROOT/alerting/rules.yml#" deploy/prometheus.yml >"$tmp"
		if ! out=$(promtool check config "$tmp" 2>&1); then
			echo "$out" >&2
			rm -f "$tmp"
			fail "deploy/prometheus.yml is not valid (promtool check config)"
		fi
		rm -f "$tmp"
		say "ok: deploy/prometheus.yml (promtool check config, with alerting/rules.yml)"
	else
		say "skipped: promtool not installed, deploy/prometheus.yml not checked"
	fi
fi

# ------------------------------------------------------- 4. the worker's config
if [[ ${SKIP_FANOUT_VALIDATE:-0} != 1 && -f deploy/fanout.compose.yaml ]]; then
	fanout=()
	if [[ -n ${FANOUT_BIN:-} ]]; then
		fanout=("$FANOUT_BIN")
	elif command -v go >/dev/null; then
		fanout=(go run .)
	fi
	if [[ ${#fanout[@]} -gt 0 ]]; then
		# the variables the worker service sets for deploy/fanout.compose.yaml
		if ! out=$(env FANOUT_CONFIG=deploy/fanout.compose.yaml \
			SINK_SIGNING_SECRET=whsec_Y2hlY2stY29tcG9zZS1zaWduaW5nLWtleS0zMmJ5dGU= CRM_DELAY_MS=200 FRAUD_STATUS=503 \
			"${fanout[@]}" validate 2>&1); then
			echo "$out" >&2
			fail "deploy/fanout.compose.yaml is not valid (fanout validate)"
		fi
		say "ok: deploy/fanout.compose.yaml (fanout validate)"
	else
		say "skipped: no go and no FANOUT_BIN, deploy/fanout.compose.yaml not checked"
	fi
fi

say "all checks passed"
