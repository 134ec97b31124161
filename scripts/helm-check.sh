#!/usr/bin/env bash
# Checks the Helm chart in helm/incidentd without a cluster:
#   1. helm lint, for the default values and every ci/*-values.yaml;
#   2. helm template for the same value sets, then validates every rendered
#      object offline against the Kubernetes OpenAPI schemas shipped by
#      kubernetes-validate (strict: an unknown field such as `contaners`
#      fails), checks the ServiceMonitor (a CRD it has no schema for) by
#      hand, and parses the rendered incidentd.toml, whose
#      [engine.passivation] must hold the values' engine.maxResidentPerShard
#      and engine.passivation.*;
#   3. asserts that values the chart must refuse (several replicas with the
#      local store, a grace period below shutdown + hand-over, incident
#      actors that do not fit the memory limit, a memory limit that is no
#      Kubernetes quantity, [engine.passivation] in extraConfig, older
#      write formats with the local store) fail to
#      render, and that limits just big enough, in each quantity form, do.
# Installs its tools on first use under ~/.cache/incidentd-tools, so later
# runs start at once: helm (built with `go install`, the only way to get it
# here: the Go module proxy is reachable, release downloads are not) and
# kubernetes-validate (PyPI) in a venv.
#
# Usage: scripts/helm-check.sh [chart-dir]   (default: helm/incidentd)
# Environment:
#   KUBE_VERSIONS  Kubernetes versions to validate against, space-separated
#                  (default "1.25.0 1.37.0": the oldest the chart supports,
#                  see helm/incidentd/README.md, and the newest schemas
#                  kubernetes-validate 1.37.0 ships)
#   INCIDENTD_BIN  optional built incidentd binary; when set, each rendered
#                  incidentd.toml also goes through `incidentd check-config`
# Last line on success: "helm: ok (N value sets rendered and validated)".
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBE_VERSIONS="${KUBE_VERSIONS:-1.25.0 1.37.0}"
TOOLS="$HOME/.cache/incidentd-tools"
CHART="${1:-helm/incidentd}"

die() {
    echo "helm-check: FAILED: $*" >&2
    exit 1
}

[[ -f "$CHART/Chart.yaml" ]] || die "no chart at $CHART"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- tools ---------------------------------------------------------------

# A helm built with `go install` has no version stamped by ldflags, so the
# module version recorded in the binary (`go version -m`) is what tells it.
helm_is_wanted() {
    local bin="$1"
    [[ -x "$bin" ]] || return 1
    if "$bin" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
        return 0
    fi
    command -v go >/dev/null &&
        go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$HELM_VERSION([[:space:]]|$)"
}

HELM=""
if command -v helm >/dev/null && helm_is_wanted "$(command -v helm)"; then
    HELM="$(command -v helm)"
elif helm_is_wanted "$TOOLS/bin/helm"; then
    HELM="$TOOLS/bin/helm"
else
    command -v go >/dev/null || die "helm $HELM_VERSION is missing and go is not installed to build it"
    echo "== installing helm $HELM_VERSION with go install (first run only; takes minutes)"
    mkdir -p "$TOOLS/bin"
    GOBIN="$TOOLS/bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" ||
        die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    HELM="$TOOLS/bin/helm"
    helm_is_wanted "$HELM" || die "$HELM is not helm $HELM_VERSION"
fi

# Keep helm's own state (repositories, cache, plugins) out of the user's
# config: the checks need none of it, and a stray repository file or plugin
# must not change the result.
export HELM_CONFIG_HOME="$work/helm-config" HELM_CACHE_HOME="$work/helm-cache" HELM_DATA_HOME="$work/helm-data"

VENV="$TOOLS/venv"
if ! "$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$KUBERNETES_VALIDATE_VERSION"; then
    echo "== installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $VENV (first run only)"
    # 3.11+: the rendered incidentd.toml is parsed with the stdlib tomllib.
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "python3 3.11 or later is needed (found $(python3 --version 2>&1))"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" || die "pip install kubernetes-validate"
fi
PY="$VENV/bin/python"  # has PyYAML (a kubernetes-validate dependency) and tomllib

# --- value sets ----------------------------------------------------------

# The default values plus every ci/*-values.yaml (helm's own convention for
# chart-testing value sets).
declare -a names=(default)
declare -a flags=("")
for f in "$CHART"/ci/*-values.yaml; do
    [[ -e "$f" ]] || continue
    names+=("$(basename "$f" .yaml)")
    flags+=("$f")
done

# Splits a rendered manifest: Kubernetes' own kinds go to $2 for
# kubernetes-validate; CRD objects it has no schema for are checked here
# against the few fields the chart renders (so a typo there fails too); the
# ConfigMap's incidentd.toml is parsed as TOML and written to $3.
split_and_check() {
    "$PY" - "$@" <<'PYEOF'
import sys, tomllib, yaml

src, k8s_out, toml_out = sys.argv[1:4]
errors = []
known, toml_text = [], None
with open(src) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
for d in docs:
    if not isinstance(d, dict) or "apiVersion" not in d or "kind" not in d:
        errors.append(f"object without apiVersion/kind: {str(d)[:80]}")
        continue
    where = f"{d['kind']}/{d.get('metadata', {}).get('name')}"
    group = d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
    if group.endswith("coreos.com"):
        # Prometheus Operator CRD: only ServiceMonitor is rendered.
        if d["apiVersion"] != "monitoring.coreos.com/v1" or d["kind"] != "ServiceMonitor":
            errors.append(f"{where}: unexpected {d['apiVersion']} {d['kind']}")
            continue
        allowed_top = {"apiVersion", "kind", "metadata", "spec"}
        allowed_spec = {"selector", "namespaceSelector", "endpoints", "jobLabel"}
        allowed_ep = {"port", "path", "interval", "scrapeTimeout", "scheme"}
        spec = d.get("spec") or {}
        errors += [f"{where}: unknown field {k}" for k in set(d) - allowed_top]
        errors += [f"{where}: unknown field spec.{k}" for k in set(spec) - allowed_spec]
        if not (spec.get("selector") or {}).get("matchLabels"):
            errors.append(f"{where}: spec.selector.matchLabels is empty")
        eps = spec.get("endpoints")
        if not isinstance(eps, list) or not eps:
            errors.append(f"{where}: spec.endpoints must be a non-empty list")
        for i, ep in enumerate(eps or []):
            errors += [f"{where}: unknown field spec.endpoints[{i}].{k}" for k in set(ep) - allowed_ep]
            if not ep.get("port"):
                errors.append(f"{where}: spec.endpoints[{i}].port is missing")
        continue
    known.append(d)
    if d["kind"] == "ConfigMap" and "incidentd.toml" in (d.get("data") or {}):
        toml_text = d["data"]["incidentd.toml"]
if toml_text is None:
    errors.append("no ConfigMap with incidentd.toml rendered")
else:
    try:
        cfg = tomllib.loads(toml_text)
        if cfg.get("engine", {}).get("shards", 0) < 1:
            errors.append("incidentd.toml: engine.shards must be at least 1")
    except tomllib.TOMLDecodeError as e:
        errors.append(f"incidentd.toml is not valid TOML: {e}")
    with open(toml_out, "w") as f:
        f.write(toml_text)
with open(k8s_out, "w") as f:
    yaml.safe_dump_all(known, f)
with open(k8s_out.removesuffix(".yaml") + ".count", "w") as f:
    f.write(str(len(known)))
for e in errors:
    print(f"  {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PYEOF
}

# The rendered incidentd.toml ($1) must carry engine.maxResidentPerShard
# and engine.passivation.* of the chart's values.yaml overlaid with the value
# file $2 (if any) into [engine.passivation].
check_passivation() {
    "$PY" - "$CHART/values.yaml" "$@" <<'PYEOF'
import sys, tomllib, yaml

defaults, toml_path, *files = sys.argv[1:]

def merge(base, over):
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    return {k: merge(base.get(k), over[k]) if k in over else base[k] for k in {*base, *over}}

values = yaml.safe_load(open(defaults))
for path in files:
    values = merge(values, yaml.safe_load(open(path)) or {})
engine = values["engine"]
p = engine["passivation"]
want = {
    "enabled": p["enabled"],
    "idle_after": str(p["idleAfter"]),
    "timer_horizon": str(p["timerHorizon"]),
    "check_interval": str(p["checkInterval"]),
    "max_resident": engine["maxResidentPerShard"],
}
with open(toml_path, "rb") as f:
    got = tomllib.load(f).get("engine", {}).get("passivation")
if got != want:
    print(f"  [engine.passivation] is {got}, expected {want}", file=sys.stderr)
    sys.exit(1)
print(f"  max_resident = {got['max_resident']}")
PYEOF
}

# --- checks --------------------------------------------------------------

for i in "${!names[@]}"; do
    name="${names[$i]}"
    args=()
    [[ -n "${flags[$i]}" ]] && args=(-f "${flags[$i]}")

    echo "== helm lint ($name)"
    "$HELM" lint --strict "$CHART" "${args[@]}" >"$work/lint.log" 2>&1 ||
        { cat "$work/lint.log" >&2; die "helm lint ($name)"; }

    echo "== helm template ($name)"
    out="$work/$name.yaml"
    "$HELM" template incidentd "$CHART" --namespace incidentd "${args[@]}" >"$out" 2>"$work/template.log" ||
        { cat "$work/template.log" >&2; die "helm template ($name)"; }

    echo "== CRDs and incidentd.toml ($name)"
    split_and_check "$out" "$work/$name.k8s.yaml" "$work/$name.toml" ||
        die "rendered objects of $name (above)"
    echo "== [engine.passivation] of incidentd.toml ($name)"
    check_passivation "$work/$name.toml" ${flags[$i]:+"${flags[$i]}"} ||
        die "[engine.passivation] in the incidentd.toml of $name (above)"

    for kv in $KUBE_VERSIONS; do
        echo "== kubernetes-validate --strict, Kubernetes $kv ($name)"
        # --strict rejects fields the schema does not know. A kind without a
        # schema (a misspelled kind) is only a WARN with exit 0 there, so any
        # line that is not an INFO "passed" fails too (CRDs were split off).
        status=0
        "$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$kv" \
            "$work/$name.k8s.yaml" >"$work/validate.log" 2>&1 || status=$?
        if [[ $status -ne 0 ]] || grep -qv '^INFO .* passed for resource ' "$work/validate.log"; then
            grep -v '^INFO ' "$work/validate.log" >&2 || cat "$work/validate.log" >&2
            die "schema validation of $name against Kubernetes $kv"
        fi
        passed="$(grep -c '^INFO .* passed for resource ' "$work/validate.log" || true)"
        [[ "$passed" -eq "$(cat "$work/$name.k8s.count")" ]] ||
            die "kubernetes-validate passed $passed objects of $name, expected $(cat "$work/$name.k8s.count")"
    done

    if [[ -n "${INCIDENTD_BIN:-}" ]]; then
        echo "== incidentd check-config ($name)"
        # A clean environment but for the token variable as the pod gets it
        # (a one-element TOML list), so that form is checked too.
        env -i PATH="$PATH" INCIDENTD__SERVER__AUTH_TOKENS='["helm-check-token"]' \
            "$INCIDENTD_BIN" check-config "$work/$name.toml" ||
            die "incidentd check-config on the incidentd.toml of $name"
    fi
done

# Values the chart must refuse: rendering them has to fail, with our message.
expect_render_failure() {
    local why="$1" pattern="$2"
    shift 2
    echo "== must refuse: $why"
    if "$HELM" template incidentd "$CHART" "$@" >/dev/null 2>"$work/refuse.log"; then
        die "helm template accepted $why ($*)"
    fi
    grep -q -- "$pattern" "$work/refuse.log" ||
        { cat "$work/refuse.log" >&2; die "helm template failed for $why, but not with the expected message ($pattern)"; }
}
expect_render_failure "3 replicas with the local store" "replicaCount=3" \
    --set replicaCount=3 --set store.kind=local
# Kafka set, so that the local-store rule itself is what must refuse it.
expect_render_failure "3 replicas with the local store and Kafka" "with store.kind=local" \
    --set replicaCount=3 --set store.kind=local --set kafka.brokers=kafka:9092
expect_render_failure "terminationGracePeriodSeconds <= shutdown + handover" "terminationGracePeriodSeconds" \
    --set terminationGracePeriodSeconds=40 \
    --set server.shutdownTimeoutSeconds=20 --set kafka.handoverTimeoutSeconds=20
expect_render_failure "Kafka with the local store" "store.kind" \
    --set kafka.brokers=kafka:9092 --set store.kind=local
expect_render_failure "older write formats with the local store" "store.writeFormats=\"2026-11-28\" with store.kind=local" \
    --set store.writeFormats=2026-11-28
# values.schema.json: a misspelled value is an error, not a silent default.
expect_render_failure "a misspelled value (replicaCunt)" "replicaCunt" \
    --set replicaCunt=3
expect_render_failure "a misspelled passivation value (engine.passivation.idleAftr)" "idleAftr" \
    --set engine.passivation.idleAftr=2m

# Incident actors against the memory limit. With the default 8 shards and
# engine.maxResidentPerShard=5000 they take 8 x 5000 x 13 KiB = 532480000
# bytes: a limit of exactly that renders, one byte less does not, in each
# form of Kubernetes quantity (which also checks the chart's parsing).
expect_render_failure "engine.maxResidentPerShard beyond the memory limit" \
    "engine.maxResidentPerShard=100000 does not fit resources.limits.memory=1Gi" \
    --set engine.maxResidentPerShard=100000
expect_render_failure "more shards than the memory limit holds actors for" \
    "a pod owning all 64 shards runs up to 64 x 5000 incident actors" \
    --set shards=64
expect_render_failure "a memory limit that is not a quantity (1GB)" \
    'resources.limits.memory="1GB" is not a Kubernetes memory quantity' \
    --set resources.limits.memory=1GB
# Where the old chart told operators to put it: the table would be defined twice.
expect_render_failure "[engine.passivation] in extraConfig" \
    "extraConfig has an \[engine.passivation\] table" \
    --set-string 'extraConfig=[routing]
group_by = ["alertname"]

 [ engine.passivation ]
max_resident = 1000'
for limit in 532479999 5.32479999e8 507Mi 0.53G 520000k; do
    expect_render_failure "a memory limit just below the actors ($limit)" \
        "does not fit resources.limits.memory=$limit" \
        --set "resources.limits.memory=$limit"
done
expect_render_failure "a memory limit just below the actors (YAML number 532479999)" \
    "does not fit resources.limits.memory=532479999" \
    --set-json 'resources={"limits":{"memory":532479999}}'

# Values the chart must accept.
expect_render_success() {
    local why="$1"
    shift
    echo "== must render: $why"
    "$HELM" template incidentd "$CHART" "$@" >/dev/null 2>"$work/accept.log" ||
        { cat "$work/accept.log" >&2; die "helm template refused $why ($*)"; }
}
for limit in 532480000 5.3248e8 508Mi 0.54G 532480k 1Gi 1G 1.5Gi 1Ti; do
    expect_render_success "a memory limit that holds the actors ($limit)" \
        --set "resources.limits.memory=$limit"
done
expect_render_success "a memory limit that holds the actors (YAML number 532480000)" \
    --set-json 'resources={"limits":{"memory":532480000}}'
expect_render_success "no memory limit" --set resources.limits=null
expect_render_success "older write formats for a rolling upgrade" \
    -f "$CHART/ci/three-replicas-values.yaml" --set store.writeFormats=2026-11-28
expect_render_success "passivation off (maxResidentPerShard then caps nothing)" \
    --set engine.passivation.enabled=false --set engine.maxResidentPerShard=100000

echo "helm: ok (${#names[@]} value sets rendered and validated)"
