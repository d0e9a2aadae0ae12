"""Checks behind scripts/check-manifests; run with the python of .cache/venv-ops.

    check_manifests.py rules [--update]
        deploy/kubernetes/base/prometheusrule.yaml is generated from deploy/prometheus/alerts.yml:
        check that the committed copy is what the generator writes (or rewrite it with --update).
    check_manifests.py k8s --versions 1.30.0,1.37.0 [--hookbridge-bin BIN] NAME=RENDERED.yaml...
        every object of each rendered kustomization against the Kubernetes OpenAPI schemas shipped
        by kubernetes-validate (strict: unknown fields are errors), the prometheus-operator objects
        against scripts/lib/crd-schemas/, then what no schema can see: probes, ports, selectors,
        securityContext, the spool volume, secret references of the ConfigMap's hookbridge.toml...
    check_manifests.py compose FILE
        what the Compose schema cannot see: bind-mounted files exist, Prometheus scrapes hookbridge
        and loads the alert rules, Grafana's provisioning points at the mounted dashboard.

Each problem is printed on its own line as `FAIL where: what`; the exit status is 1 if any.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "kubernetes"
RULE_FILE = K8S_DIR / "base" / "prometheusrule.yaml"
ALERTS_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
SECRET_TEMPLATE = K8S_DIR / "secret.example.yaml"
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"
CRD_SCHEMA_FILES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}

problems: list[str] = []


def fail(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")
    print(f"FAIL {where}: {what}")


def ok(what: str) -> None:
    print(f"  ok {what}")


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# PrometheusRule generated from deploy/prometheus/alerts.yml


class _RuleDumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_RuleDumper.add_representer(str, _str_representer)

RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `scripts/check-manifests --update`: do not edit,
# edit alerts.yml (Prometheus' own rule-file format, also loaded by docker-compose.yml) and
# regenerate. scripts/check-manifests fails while the two differ.
# The Prometheus Operator loads this object when its ruleSelector matches these labels: add the
# label your Prometheus selects (for kube-prometheus-stack, `release: <its release name>`) in an
# overlay.
"""


def generated_rule(alerts: dict) -> str:
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hookbridge", "labels": {"app.kubernetes.io/name": "hookbridge"}},
        "spec": {"groups": alerts["groups"]},
    }
    body = yaml.dump(doc, Dumper=_RuleDumper, sort_keys=False, width=1_000_000, allow_unicode=True)
    return RULE_HEADER + body


def source_metrics() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "src" / "metrics").rglob("*.rs"):
        names.update(re.findall(r'"(hookbridge_[a-z0-9_]+)"', path.read_text()))
    return names


def check_rule_metrics(where: str, groups: list) -> None:
    """Every hookbridge_* series an expression reads must be one the gateway exports."""
    known = source_metrics()
    if not known:
        fail(where, "no hookbridge_* metric names found in src/metrics/: cannot check expressions")
        return
    for group in groups:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record") or "?"
            for metric in set(re.findall(r"\bhookbridge_[a-z0-9_]+", str(rule.get("expr", "")))):
                base = re.sub(r"_(bucket|sum|count)$", "", metric)
                if metric not in known and base not in known:
                    fail(where, f"rule {name!r} reads {metric}, which src/metrics/ does not export")


def cmd_rules(update: bool) -> None:
    where = rel(RULE_FILE)
    if not ALERTS_FILE.exists():
        fail(where, f"{rel(ALERTS_FILE)} does not exist: the PrometheusRule is generated from it")
        return
    try:
        alerts = yaml.safe_load(ALERTS_FILE.read_text())
    except yaml.YAMLError as e:
        fail(rel(ALERTS_FILE), f"not YAML: {e}")
        return
    if not isinstance(alerts, dict) or not isinstance(alerts.get("groups"), list) or set(alerts) != {"groups"}:
        fail(rel(ALERTS_FILE), "a Prometheus rule file has exactly one top-level key, `groups` (a list)")
        return
    names = [g.get("name") for g in alerts["groups"] if isinstance(g, dict)]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        fail(rel(ALERTS_FILE), f"group name {dup!r} is used twice (Prometheus refuses the file)")
    check_rule_metrics(rel(ALERTS_FILE), alerts["groups"])
    want = generated_rule(alerts)
    have = RULE_FILE.read_text() if RULE_FILE.exists() else ""
    if have == want:
        ok(f"{where} is in sync with {rel(ALERTS_FILE)}")
        return
    if update:
        RULE_FILE.write_text(want)
        ok(f"{where} regenerated from {rel(ALERTS_FILE)}")
        return
    diff = list(difflib.unified_diff(have.splitlines(), want.splitlines(), "committed", "generated", lineterm=""))
    fail(where, f"out of sync with {rel(ALERTS_FILE)}: run `scripts/check-manifests --update`\n"
         + "\n".join("    " + line for line in diff[:40]))


# --------------------------------------------------------------------------------------------
# Kubernetes objects


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_schema_check(where: str, obj: dict, versions: list[str]) -> None:
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_SCHEMA_FILES:
        schema = json.loads((CRD_SCHEMAS / CRD_SCHEMA_FILES[key]).read_text())
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        for e in errors:
            fail(where, f"{CRD_SCHEMA_FILES[key]}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}")
        return
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, e.absolute_path)) or "(root)"
            fail(where, f"Kubernetes {version} schema: {path}: {e.message}")
            return  # the same error would repeat for every version
        except kubernetes_validate.SchemaNotFoundError as e:
            fail(where, e.message)
            return


def selector_matches(selector: dict, labels: dict) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        k, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(k) not in values:
            return False
        if op == "NotIn" and k in labels and labels[k] in values:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def quantity(text: Any) -> float:
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text))
    if not m:
        raise ValueError(f"not a quantity: {text!r}")
    units = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    if m.group(2) not in units:
        raise ValueError(f"unknown unit in {text!r}")
    return float(m.group(1)) * units[m.group(2)]


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk_strings(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def dockerfile_user() -> int | None:
    m = re.search(r"^USER\s+(\d+)\s*$", (ROOT / "Dockerfile").read_text(), re.M)
    return int(m.group(1)) if m else None


def find_hookbridge_bin(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    found = [p for p in (ROOT / "target" / "release" / "hookbridge", ROOT / "target" / "debug" / "hookbridge")
             if p.is_file() and os.access(p, os.X_OK)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def check_config_with_binary(where: str, binary: Path, toml_text: str, secret_dir: str, keys: set[str]) -> None:
    """`hookbridge check-config` on the ConfigMap's file, the Secret's files replaced by placeholders."""
    with tempfile.TemporaryDirectory() as tmp:
        secrets = Path(tmp) / "secrets"
        secrets.mkdir()
        for key in keys:
            (secrets / key).write_text("placeholder-for-check-config\n")
        config = Path(tmp) / "hookbridge.toml"
        config.write_text(toml_text.replace(f"file:{secret_dir}/", f"file:{secrets}/"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE__")}
        run = subprocess.run([str(binary), "check-config", str(config)], capture_output=True, text=True,
                             env=env, timeout=60)
    if run.returncode != 0:
        out = (run.stdout + run.stderr).strip().replace(str(secrets), secret_dir)
        out = out.replace(str(config), "hookbridge.toml")
        fail(where, f"`{rel(binary)} check-config` refuses hookbridge.toml:\n    " + out.replace("\n", "\n    "))
    else:
        ok(f"{where}: hookbridge.toml passes `{rel(binary)} check-config`")


def check_variant(variant: str, objs: list[dict], secret_template: dict | None, binary: Path | None) -> dict | None:
    start = len(problems)
    by_kind: dict[str, list[dict]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)

    def one(kind: str) -> dict | None:
        items = by_kind.get(kind, [])
        return items[0] if len(items) == 1 else None

    workloads = by_kind.get("StatefulSet", []) + by_kind.get("Deployment", [])
    if len(workloads) != 1:
        fail(variant, f"expected one StatefulSet or Deployment, found {len(workloads)}")
        return None
    wl = workloads[0]
    w = f"{variant}: {wl['kind']}/{wl['metadata']['name']}"
    spec = wl["spec"]
    template = spec["template"]
    pod = template["spec"]
    pod_labels = template["metadata"].get("labels") or {}
    if not selector_matches(spec["selector"], pod_labels):
        fail(w, "spec.selector does not match the pod template's labels")
    containers = pod["containers"]
    main = next((c for c in containers if c["name"] == "hookbridge"), None)
    if main is None:
        fail(w, "no container named hookbridge")
        return None
    ports = {p.get("name"): p["containerPort"] for p in main.get("ports") or []}

    def port_number(port: Any) -> int | None:
        return port if isinstance(port, int) else ports.get(port)

    # -- the config file: ConfigMap mounted where --config points
    args = main.get("args") or []
    config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else "/etc/hookbridge/hookbridge.toml"
    mounts = {m["mountPath"]: m for m in main.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    claim_templates = {c["metadata"]["name"]: c for c in spec.get("volumeClaimTemplates") or []}
    cfg_dir, cfg_key = str(PurePosixPath(config_path).parent), PurePosixPath(config_path).name
    cfg_mount = mounts.get(cfg_dir)
    cm_name = ((volumes.get(cfg_mount["name"]) or {}).get("configMap") or {}).get("name") if cfg_mount else None
    configmap = next((c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"] == cm_name), None)
    if configmap is None or cfg_key not in (configmap.get("data") or {}):
        fail(w, f"--config {config_path} is not a key of a ConfigMap mounted at {cfg_dir}")
        return None
    toml_text = configmap["data"][cfg_key]
    try:
        config = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{variant}: ConfigMap/{cm_name}", f"{cfg_key} is not TOML: {e}")
        return None
    server = config.get("server") or {}
    listen_port = int(str(server.get("listen", "0.0.0.0:8080")).rsplit(":", 1)[1])
    if ports.get("http") != listen_port:
        fail(w, f"container port `http` ({ports.get('http')}) is not server.listen's port ({listen_port})")

    # -- probes
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (main.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path or port_number(get.get("port")) != listen_port:
            fail(w, f"{probe} must GET {path} on port {listen_port}, has {get or 'none'}")

    # -- shutdown: SIGTERM -> unready for shutdown_delay_ms, then shutdown_grace_secs to drain
    delay = server.get("shutdown_delay_ms", 0) / 1000
    grace = server.get("shutdown_grace_secs", 20)
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    if not tgps > delay + grace:
        fail(w, f"terminationGracePeriodSeconds {tgps} must exceed shutdown_delay_ms + shutdown_grace_secs "
             f"({delay:g} s + {grace} s)")

    # -- security
    psc, csc = pod.get("securityContext") or {}, main.get("securityContext") or {}

    def eff(key: str) -> Any:
        return csc.get(key, psc.get(key))

    user = dockerfile_user()
    if eff("runAsNonRoot") is not True:
        fail(w, "runAsNonRoot must be true")
    if eff("runAsUser") != user:
        fail(w, f"runAsUser {eff('runAsUser')} is not the Dockerfile's USER {user}")
    if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
        fail(w, "seccompProfile must be RuntimeDefault")
    if csc.get("allowPrivilegeEscalation") is not False:
        fail(w, "allowPrivilegeEscalation must be false")
    if csc.get("readOnlyRootFilesystem") is not True:
        fail(w, "readOnlyRootFilesystem must be true")
    if csc.get("privileged"):
        fail(w, "privileged must not be set")
    caps = csc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []) or caps.get("add"):
        fail(w, "capabilities must drop ALL and add none")
    if pod.get("automountServiceAccountToken") is not False:
        fail(w, "automountServiceAccountToken must be false (hookbridge uses no Kubernetes API)")
    tmp = mounts.get("/tmp")
    if not tmp or "emptyDir" not in volumes.get(tmp["name"], {}):
        fail(w, "/tmp must be an emptyDir (the root filesystem is read-only)")
    for c in containers:
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    fail(w, f"container {c['name']}: resources.{kind}.{r} is missing")
        for r in ("cpu", "memory"):
            try:
                if quantity(res["requests"][r]) > quantity(res["limits"][r]):
                    fail(w, f"container {c['name']}: {r} request above its limit")
            except (KeyError, ValueError):
                pass
    sa = pod.get("serviceAccountName")
    if sa and not any(s["metadata"]["name"] == sa for s in by_kind.get("ServiceAccount", [])):
        fail(w, f"serviceAccountName {sa} is not in the kustomization")

    # -- secrets: every reference in hookbridge.toml resolves inside the pod
    env_names = {e["name"] for e in main.get("env") or []}
    refs = [(k, v) for k, v in walk_strings(config) if v.startswith(("file:", "env:"))]
    secret_mounts = {p: m for p, m in mounts.items() if "secret" in volumes.get(m["name"], {})}
    used_keys: dict[str, set[str]] = {}
    for key, ref in refs:
        if ref.startswith("env:"):
            if ref[4:] not in env_names:
                fail(w, f"{key} = {ref!r}: the container sets no such environment variable")
            continue
        path = PurePosixPath(ref[5:])
        mount = next((m for p, m in secret_mounts.items() if path.parent == PurePosixPath(p)), None)
        if mount is None:
            fail(w, f"{key} = {ref!r}: no Secret is mounted at {path.parent}")
            continue
        vol = volumes[mount["name"]]["secret"]
        if not mount.get("readOnly"):
            fail(w, f"the Secret mount {path.parent} must be readOnly")
        if vol.get("optional"):
            fail(w, f"the Secret volume {mount['name']} must not be optional")
        used_keys.setdefault(vol["secretName"], set()).add(path.name)
    if secret_template is not None:
        name = secret_template["metadata"]["name"]
        template_keys = set(secret_template.get("stringData") or {}) | set(secret_template.get("data") or {})
        for secret_name, keys in used_keys.items():
            if secret_name != name:
                fail(w, f"mounts Secret {secret_name}, but {rel(SECRET_TEMPLATE)} describes {name}")
            elif keys - template_keys:
                fail(rel(SECRET_TEMPLATE), f"lacks keys that hookbridge.toml reads: {sorted(keys - template_keys)}")
        if variant == "base" and template_keys - used_keys.get(name, set()):
            fail(rel(SECRET_TEMPLATE), f"keys no hookbridge.toml reads: {sorted(template_keys - used_keys.get(name, set()))}")
    if binary is not None:
        secret_dir = next(iter(secret_mounts), "/var/run/secrets/hookbridge")
        check_config_with_binary(f"{variant}: ConfigMap/{cm_name}", binary, toml_text, secret_dir,
                                 set().union(*used_keys.values()) if used_keys else set())

    # -- the spool lives on the replica's own PersistentVolume
    spool = config.get("spool")
    if spool is not None:
        mount = mounts.get(spool["path"])
        claim = claim_templates.get(mount["name"]) if mount else None
        if wl["kind"] != "StatefulSet" or claim is None:
            fail(w, f"[spool] path {spool['path']} must be a volumeClaimTemplates volume of a StatefulSet "
                 "(a spool on pod storage is lost with the pod)")
        else:
            if mount.get("readOnly"):
                fail(w, "the spool mount must be writable")
            size = quantity(claim["spec"]["resources"]["requests"]["storage"])
            if size < spool.get("max_bytes", 2**30):
                fail(w, f"spool volume ({size:.0f} B) smaller than [spool] max_bytes ({spool.get('max_bytes', 2**30)})")
            if "ReadWriteOnce" not in claim["spec"].get("accessModes", []) and \
                    "ReadWriteOncePod" not in claim["spec"].get("accessModes", []):
                fail(w, "the spool volume needs ReadWriteOnce (one per replica)")
    elif wl["kind"] == "StatefulSet":
        fail(w, "a StatefulSet without [spool] in hookbridge.toml: use the stateless overlay")
    for c_name in claim_templates:
        if not any(m["name"] == c_name for m in mounts.values()):
            fail(w, f"volumeClaimTemplate {c_name} is not mounted")

    # -- replicas share dedup keys
    hpa = one("HorizontalPodAutoscaler")
    max_replicas = max(spec.get("replicas", 1), (hpa or {}).get("spec", {}).get("maxReplicas", 1))
    if max_replicas > 1 and (config.get("dedup") or {}).get("store", "memory") == "memory":
        fail(w, f"up to {max_replicas} replicas with [dedup] store = \"memory\": a retry landing on "
             "another replica would be published twice (use store = \"nats\")")

    # -- services, ServiceMonitor, PDB, HPA point at this workload
    services = by_kind.get("Service", [])
    for svc in services:
        s = f"{variant}: Service/{svc['metadata']['name']}"
        if not selector_matches({"matchLabels": svc["spec"].get("selector") or {}}, pod_labels) \
                or not svc["spec"].get("selector"):
            fail(s, "selector does not select the hookbridge pods")
        for p in svc["spec"].get("ports") or []:
            if port_number(p.get("targetPort", p["port"])) is None:
                fail(s, f"targetPort {p.get('targetPort')} is not a port of the container")
    if wl["kind"] == "StatefulSet":
        gov = next((s for s in services if s["metadata"]["name"] == spec.get("serviceName")), None)
        if gov is None or gov["spec"].get("clusterIP") != "None":
            fail(w, f"serviceName {spec.get('serviceName')} must be a headless Service of the kustomization")
    sm = one("ServiceMonitor")
    if sm is None:
        fail(variant, "expected one ServiceMonitor")
    else:
        matched = [s for s in services if selector_matches(sm["spec"]["selector"], s["metadata"].get("labels") or {})]
        if len(matched) != 1:
            fail(f"{variant}: ServiceMonitor", f"selects {len(matched)} Services {[s['metadata']['name'] for s in matched]}; "
                 "one is right (each would be scraped)")
        for ep in sm["spec"]["endpoints"]:
            for s in matched:
                if ep.get("port") not in {p.get("name") for p in s["spec"]["ports"]}:
                    fail(f"{variant}: ServiceMonitor", f"port {ep.get('port')} is not a named port of Service {s['metadata']['name']}")
            if ep.get("path", "/metrics") != "/metrics":
                fail(f"{variant}: ServiceMonitor", "hookbridge serves metrics at /metrics")
    pdb = one("PodDisruptionBudget")
    min_replicas = (hpa or {}).get("spec", {}).get("minReplicas", spec.get("replicas", 1))
    if pdb is None:
        fail(variant, "expected one PodDisruptionBudget")
    else:
        if not selector_matches(pdb["spec"]["selector"], pod_labels):
            fail(f"{variant}: PodDisruptionBudget", "selector does not match the pods")
        if "minAvailable" in pdb["spec"] and isinstance(pdb["spec"]["minAvailable"], int) \
                and pdb["spec"]["minAvailable"] >= min_replicas:
            fail(f"{variant}: PodDisruptionBudget", f"minAvailable {pdb['spec']['minAvailable']} with {min_replicas} "
                 "replicas would block every node drain")
        if pdb["spec"].get("maxUnavailable") == 0:
            fail(f"{variant}: PodDisruptionBudget", "maxUnavailable 0 blocks every node drain")
    if hpa is None:
        fail(variant, "expected one HorizontalPodAutoscaler")
    else:
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref.get("apiVersion"), ref["kind"], ref["name"]) != (wl["apiVersion"], wl["kind"], wl["metadata"]["name"]):
            fail(f"{variant}: HorizontalPodAutoscaler", f"scaleTargetRef {ref} is not {wl['kind']}/{wl['metadata']['name']}")
        if min_replicas < 2:
            fail(f"{variant}: HorizontalPodAutoscaler", "minReplicas below 2: one node drain stops webhooks")
    rules = by_kind.get("PrometheusRule", [])
    if len(rules) != 1:
        fail(variant, f"expected one PrometheusRule, found {len(rules)}")
    if len(problems) == start:
        ok(f"{variant}: {wl['kind']} and its Services, ServiceMonitor, PDB, HPA, ConfigMap and Secret references agree")
    return wl


def comparable_pod(wl: dict) -> dict:
    """The pod template without what legitimately differs between the two variants."""
    template = copy.deepcopy(wl["spec"]["template"])
    claims = {c["metadata"]["name"] for c in wl["spec"].get("volumeClaimTemplates") or []}
    for c in template["spec"]["containers"]:
        c["volumeMounts"] = [m for m in c.get("volumeMounts") or [] if m["name"] not in claims]
    for v in template["spec"].get("volumes") or []:
        if "configMap" in v:  # name carries the content hash of a different hookbridge.toml
            v["configMap"]["name"] = re.sub(r"-[a-z0-9]{10}$", "", v["configMap"]["name"])
    return template


def cmd_k8s(versions: list[str], rendered: list[str], hookbridge_bin: str | None) -> None:
    secret_template = None
    if SECRET_TEMPLATE.exists():
        docs = load_docs(SECRET_TEMPLATE)
        if len(docs) != 1 or docs[0].get("kind") != "Secret":
            fail(rel(SECRET_TEMPLATE), "must hold exactly one Secret")
        else:
            secret_template = docs[0]
            k8s_schema_check(rel(SECRET_TEMPLATE), secret_template, versions)
            for k, v in (secret_template.get("stringData") or {}).items():
                if not re.fullmatch(r"<[^<>]+>", str(v)):
                    fail(rel(SECRET_TEMPLATE), f"{k}: a template holds `<placeholders>` only, never values")
            if secret_template.get("data"):
                fail(rel(SECRET_TEMPLATE), "use stringData placeholders, not data (base64 hides what is in it)")
    else:
        fail(rel(SECRET_TEMPLATE), "missing")
    binary = find_hookbridge_bin(hookbridge_bin)
    if binary is None:
        print("  -- no built hookbridge (target/*/hookbridge or HOOKBRIDGE_BIN): `check-config` of the "
              "ConfigMaps skipped")
    workloads = {}
    for item in rendered:
        variant, _, path = item.partition("=")
        objs = load_docs(Path(path))
        before = len(problems)
        for o in objs:
            k8s_schema_check(f"{variant}: {o.get('kind')}/{(o.get('metadata') or {}).get('name')}", o, versions)
        if len(problems) == before:
            ok(f"{variant}: {len(objs)} objects valid against Kubernetes {', '.join(versions)} (strict) "
               "and the ServiceMonitor/PrometheusRule schemas")
            wl = check_variant(variant, objs, secret_template, binary)
            if wl is not None:
                workloads[variant] = wl
        rule = next((o for o in objs if o.get("kind") == "PrometheusRule"), None)
        if rule is not None and (rule.get("spec") or {}).get("groups"):
            check_rule_metrics(f"{variant}: PrometheusRule", rule["spec"]["groups"])
    kinds = {wl["kind"] for wl in workloads.values()}
    if {"StatefulSet", "Deployment"} <= kinds:
        sts = next(wl for wl in workloads.values() if wl["kind"] == "StatefulSet")
        dep = next(wl for wl in workloads.values() if wl["kind"] == "Deployment")
        a, b = comparable_pod(sts), comparable_pod(dep)
        if a != b:
            diff = difflib.unified_diff(yaml.safe_dump(a).splitlines(), yaml.safe_dump(b).splitlines(),
                                        "StatefulSet pod", "Deployment pod", lineterm="")
            fail("pod templates", "the StatefulSet and the Deployment differ beyond the spool volume:\n"
                 + "\n".join("    " + line for line in list(diff)[:40]))
        else:
            ok("the StatefulSet's and the Deployment's pod templates differ only by the spool volume")


# --------------------------------------------------------------------------------------------
# docker-compose.yml beyond its schema


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host source, container target) of the service's bind mounts."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/", "~")):
                out.append((parts[0], parts[1]))
        elif v.get("type") == "bind":
            out.append((v["source"], v["target"]))
    return out


def host_path(compose_dir: Path, source: str) -> Path:
    return (compose_dir / source).resolve() if not source.startswith("/") else Path(source)


def container_file(compose_dir: Path, service: dict, target: str) -> Path | None:
    """The host file a container path comes from, through the service's bind mounts."""
    target_p = PurePosixPath(target)
    for src, dst in bind_mounts(service):
        dst_p = PurePosixPath(dst)
        if target_p == dst_p:
            return host_path(compose_dir, src)
        if dst_p in target_p.parents:
            return host_path(compose_dir, src) / str(target_p.relative_to(dst_p))
    return None


def container_json_files(compose_dir: Path, service: dict, target: str) -> list[Path]:
    """Host files behind the *.json files a container sees in directory `target`: the directory
    itself bind-mounted (or a parent of it), or files bind-mounted into it one by one."""
    found = []
    top = container_file(compose_dir, service, target)
    if top is not None and top.is_dir():
        found += sorted(top.rglob("*.json"))
    for src, dst in bind_mounts(service):
        if PurePosixPath(target) in PurePosixPath(dst).parents and dst.endswith(".json"):
            found.append(host_path(compose_dir, src))
    return found


def service_ports(service: dict) -> set[int]:
    ports = set()
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            ports.add(int(p["target"]))
        else:
            ports.add(int(str(p).split("/")[0].split(":")[-1]))
    ports.update(int(str(p).split("/")[0]) for p in service.get("expose") or [])
    return ports


def load_yaml(where: str, path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        fail(where, f"cannot read {rel(path)}: {e}")
        return None


def check_dashboard(where: str, path: Path, datasource_uids: set[str], datasource_names: set[str]) -> None:
    try:
        dash = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        fail(where, f"{rel(path)} is not JSON: {e}")
        return
    if "__inputs" in dash:
        fail(where, f"{rel(path)} has __inputs (an 'export for sharing' dashboard): provisioning does "
             "not fill them in; reference the provisioned data source instead")
    variables = {v.get("name") for v in (dash.get("templating") or {}).get("list") or [] if v.get("type") == "datasource"}

    def resolves(ref: str) -> bool:
        m = re.fullmatch(r"\$\{?([A-Za-z0-9_]+)(?::[a-z]+)?\}?", ref)
        return (m is not None and m.group(1) in variables) or ref in datasource_uids or ref in datasource_names \
            or ref in ("-- Grafana --", "grafana", "-- Dashboard --", "-- Mixed --")

    bad = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict) and "uid" in ds and not resolves(str(ds["uid"])):
                bad.add(str(ds["uid"]))
            elif isinstance(ds, str) and not resolves(ds):
                bad.add(ds)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dash)
    for ref in sorted(bad):
        fail(where, f"{rel(path)} uses data source {ref!r}, which is neither provisioned nor a datasource variable")
    if not bad and "__inputs" not in dash:
        ok(f"{rel(path)}: every data source reference resolves to a provisioned one or a variable")


def cmd_compose(path: Path) -> None:
    where = rel(path)
    start = len(problems)
    compose = load_yaml(where, path)
    if not isinstance(compose, dict):
        return
    cdir = path.resolve().parent
    services = compose.get("services") or {}
    for name in ("kafka", "nats", "hookbridge", "prometheus", "grafana"):
        if name not in services:
            fail(where, f"service {name} is missing")
    for name, svc in services.items():
        for src, _ in bind_mounts(svc):
            if not host_path(cdir, src).exists():
                fail(where, f"service {name} bind-mounts {src}, which does not exist (Docker would create "
                     "an empty directory in its place)")
    prom, graf, hb = services.get("prometheus"), services.get("grafana"), services.get("hookbridge")
    if prom:
        cmd = prom.get("command") or []
        flag = next((c for c in cmd if str(c).startswith("--config.file=")), "--config.file=/etc/prometheus/prometheus.yml")
        cfg_path = container_file(cdir, prom, flag.split("=", 1)[1])
        cfg = load_yaml(f"{where}: prometheus", cfg_path) if cfg_path and cfg_path.exists() else None
        if not isinstance(cfg, dict):
            fail(f"{where}: prometheus", f"{flag}: no bind-mounted Prometheus config there")
        else:
            w = rel(cfg_path)
            hb_port = next(iter(service_ports(hb or {}) & {8080}), None)
            scraped = [(job, t) for job in cfg.get("scrape_configs") or []
                       for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
            hb_jobs = [job for job, t in scraped if t == f"hookbridge:{hb_port}"]
            if not hb_jobs:
                fail(w, f"no scrape_configs target hookbridge:{hb_port} (the compose service and its port)")
            for job in hb_jobs:
                if job.get("metrics_path", "/metrics") != "/metrics":
                    fail(w, f"job {job.get('job_name')}: metrics_path must be /metrics")
            names = [job.get("job_name") for job in cfg.get("scrape_configs") or []]
            if len(names) != len(set(names)) or None in names:
                fail(w, "every scrape config needs a unique job_name")
            for target in (t for _, t in scraped):
                host = target.rsplit(":", 1)[0]
                if host not in services and host != "localhost":
                    fail(w, f"target {target}: {host} is not a compose service")
            rule_files = cfg.get("rule_files") or []
            if not rule_files:
                fail(w, "rule_files is empty: the alerts would not be loaded")
            for rf in rule_files:
                host_rf = container_file(cdir, prom, str(PurePosixPath(flag.split("=", 1)[1]).parent / rf)
                                         if not str(rf).startswith("/") else rf)
                if host_rf is None or not host_rf.exists():
                    fail(w, f"rule_files {rf}: not a bind-mounted file in the prometheus service")
                elif host_rf.resolve() != ALERTS_FILE.resolve():
                    fail(w, f"rule_files {rf} comes from {rel(host_rf)}, expected {rel(ALERTS_FILE)}")
            if len(problems) == start:
                ok(f"{w}: scrapes hookbridge:{hb_port}/metrics and loads {rel(ALERTS_FILE)}")
    if graf:
        prov = container_file(cdir, graf, "/etc/grafana/provisioning")
        if prov is None or not prov.is_dir():
            fail(f"{where}: grafana", "no provisioning directory bind-mounted at /etc/grafana/provisioning")
            return
        uids, ds_names = set(), set()
        for f in sorted((prov / "datasources").glob("*.y*ml")):
            doc = load_yaml(rel(f), f) or {}
            if doc.get("apiVersion") != 1:
                fail(rel(f), "apiVersion must be 1")
            for ds in doc.get("datasources") or []:
                uids.add(ds.get("uid"))
                ds_names.add(ds.get("name"))
                m = re.fullmatch(r"https?://([^:/]+):(\d+)/?", str(ds.get("url", "")))
                if ds.get("type") == "prometheus" and (not m or m.group(1) not in services
                                                         or int(m.group(2)) not in service_ports(services[m.group(1)])):
                    fail(rel(f), f"data source {ds.get('name')}: url {ds.get('url')} is not a compose service's port")
        if not uids:
            fail(f"{rel(prov)}/datasources", "no data source provisioned")
        dashboards = []
        for f in sorted((prov / "dashboards").glob("*.y*ml")):
            doc = load_yaml(rel(f), f) or {}
            if doc.get("apiVersion") != 1:
                fail(rel(f), "apiVersion must be 1")
            for provider in doc.get("providers") or []:
                target = (provider.get("options") or {}).get("path")
                found = container_json_files(cdir, graf, target) if target else []
                if not found:
                    fail(rel(f), f"provider {provider.get('name')}: no dashboard JSON is bind-mounted at {target} in grafana")
                dashboards += found
        if not dashboards:
            fail(f"{where}: grafana", "no dashboard JSON reaches a provisioning provider")
        for d in dashboards:
            check_dashboard(rel(prov), d, uids - {None}, ds_names - {None})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rules")
    r.add_argument("--update", action="store_true")
    k = sub.add_parser("k8s")
    k.add_argument("--versions", required=True)
    k.add_argument("--hookbridge-bin")
    k.add_argument("rendered", nargs="+")
    c = sub.add_parser("compose")
    c.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.cmd == "rules":
        cmd_rules(args.update)
    elif args.cmd == "k8s":
        cmd_k8s(args.versions.split(","), args.rendered, args.hookbridge_bin)
    else:
        cmd_compose(args.file)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
