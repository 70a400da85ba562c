"""
The Kubernetes sidecar example (deploy/kubernetes/*.yaml), parsed and cross-checked: the crmgate container reads
the configuration the ConfigMap holds, mounted at /etc/crmgate with every rule file the configuration expects; its
ports, probes (/-/readyz, /-/healthz on the admin port) and Prometheus annotations agree with that configuration;
the application reaches crmgate at 127.0.0.1 on the listen port; the preStop sleep and the gateway's
shutdown-timeout fit in terminationGracePeriodSeconds; the image runs as the Dockerfile's USER; the autoscaler
targets the Deployment. Then the real gateway runs on the ConfigMap's configuration and rules: `crmgate -t`, and a
short HTTP/2 load that every request of must succeed. Its RSS is noted, not asserted: memory is measured by the
benchmark (tests/bench), which the resource figures come from.
"""
import os
import re
import shutil
import subprocess

import sys

sys.dont_write_bytecode = True  # before deploylib: no __pycache__ in the source tree
import deploylib as d  # noqa: E402
from deploylib import check, h

import policy_helpers as ph  # noqa: E402  (tests/e2e is on sys.path through deploylib)

suite = d.h.Suite("kubernetes")
K8S_DIR = os.path.join(d.DEPLOY_DIR, "kubernetes")
CONFIG_KEY = "crmgate.yaml"
MOUNT = "/etc/crmgate"


def documents():
    yaml = d.import_yaml()
    docs = []
    names = sorted(f for f in os.listdir(K8S_DIR) if f.endswith((".yaml", ".yml")))
    check(names, "no manifests in %s" % K8S_DIR)
    for name in names:
        for doc in yaml.safe_load_all(d.read(os.path.join(K8S_DIR, name))):
            if doc is None:
                continue
            for key in ("apiVersion", "kind", "metadata"):
                check(key in doc, "%s: a document without %s" % (name, key))
            check(doc["metadata"].get("name"), "%s: a %s without metadata.name" % (name, doc["kind"]))
            docs.append(doc)
    return docs


def one(docs, kind, name=None):
    found = [x for x in docs if x["kind"] == kind and (name is None or x["metadata"]["name"] == name)]
    h.eq(len(found), 1, "%s%s manifests" % (kind, "" if name is None else " " + name))
    return found[0]


class Example:
    """The Deployment, its crmgate and application containers, the ConfigMap and the configuration it holds."""

    def __init__(self):
        self.docs = documents()
        self.deployment = one(self.docs, "Deployment")
        self.pod = self.deployment["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in self.pod["containers"]}
        check("crmgate" in containers, "no container named crmgate: %r" % sorted(containers))
        self.gw = containers.pop("crmgate")
        h.eq(len(containers), 1, "application containers beside crmgate")
        self.app = list(containers.values())[0]
        mounts = [m for m in self.gw.get("volumeMounts", []) if m["mountPath"] == MOUNT]
        h.eq(len(mounts), 1, "volume mounts of crmgate at %s" % MOUNT)
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        check(mounts[0]["name"] in volumes, "the mount names volume %r, which the pod lacks" % mounts[0]["name"])
        self.volume = volumes[mounts[0]["name"]]
        check("configMap" in self.volume, "the volume at %s is not a ConfigMap" % MOUNT)
        self.configmap = one(self.docs, "ConfigMap", self.volume["configMap"]["name"])
        self.data = self.configmap["data"]
        # the files at /etc/crmgate: the volume's items (or, without items, every key under its own name)
        items = self.volume["configMap"].get("items") or [{"key": k, "path": k} for k in self.data]
        self.files = {}
        for item in items:
            check(item["key"] in self.data, "the volume maps key %r, which the ConfigMap lacks" % item["key"])
            self.files[item["path"]] = self.data[item["key"]]
        check(CONFIG_KEY in self.files, "no %s/%s in the volume" % (MOUNT, CONFIG_KEY))
        self.config = d.import_yaml().safe_load(self.files[CONFIG_KEY])
        self.listen = d.hostport(self.config["listen"])
        self.admin = d.hostport(self.config["admin"])

    def port_named(self, port):
        if isinstance(port, int):
            return port
        named = [p["containerPort"] for p in self.gw.get("ports", []) if p.get("name") == port]
        h.eq(len(named), 1, "container ports named %r" % port)
        return named[0]

    def materialize(self, root):
        """Writes /etc/crmgate as the pod sees it under root; returns the configuration's path."""
        for path, content in self.files.items():
            target = os.path.join(root, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as f:
                f.write(content)
        return os.path.join(root, CONFIG_KEY)


def mebibytes(quantity):
    m = re.fullmatch(r"(\d+)(Mi|Gi)", str(quantity))
    check(m is not None, "memory quantity %r (expected Mi or Gi)" % quantity)
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


@suite.test
def configmap_holds_what_the_configuration_expects():
    ex = Example()
    h.eq(ex.gw.get("args"), ["-c", "%s/%s" % (MOUNT, CONFIG_KEY)], "crmgate's args")
    rules = ex.config.get("rules", "rules")
    rules = rules if isinstance(rules, list) else [rules]
    mounted_json = sorted(p for p in ex.files if p.endswith(".json"))
    for entry in rules:
        check(not entry.startswith("/") or entry.startswith(MOUNT + "/"), "rules entry %r is outside %s" % (entry, MOUNT))
        rel = entry[len(MOUNT) + 1:] if entry.startswith("/") else entry
        if rel.endswith(".json"):
            check(rel in ex.files, "the configuration reads %s, which no ConfigMap item provides" % rel)
        else:
            inside = [p for p in mounted_json if os.path.dirname(p) == rel.rstrip("/")]
            check(inside, "the configuration reads the directory %s, where no ConfigMap item puts a .json file" % rel)
    json_keys = sorted(k for k in ex.data if k.endswith(".json"))
    mapped = sorted(i["key"] for i in ex.volume["configMap"].get("items", []) if i["key"].endswith(".json"))
    h.eq(mapped, json_keys, "rule files of the ConfigMap mounted by the volume")
    h.note("files at %s: %s" % (MOUNT, " ".join(sorted(ex.files))))
    check(ex.config["audit"]["path"] == "-", "audit.path %r: the sidecar writes its audit to standard output"
          % ex.config["audit"]["path"])
    check(isinstance(ex.config.get("threads"), int), "threads must be a number in a container, not %r"
          % ex.config.get("threads"))


@suite.test
def ports_probes_and_annotations_agree():
    ex = Example()
    h.eq(ex.listen[0], "127.0.0.1", "listen host (the application is in the same pod)")
    check(ex.admin[0] in ("0.0.0.0", "::"), "admin host %r: the kubelet and Prometheus come from outside the pod"
          % ex.admin[0])
    declared = {p["containerPort"] for p in ex.gw.get("ports", [])}
    check(ex.admin[1] in declared, "the admin port %d is not a containerPort of crmgate" % ex.admin[1])
    for probe, path in (("readinessProbe", "/-/readyz"), ("livenessProbe", "/-/healthz")):
        get = ex.gw.get(probe, {}).get("httpGet")
        check(get is not None, "crmgate has no httpGet %s" % probe)
        h.eq(get["path"], path, probe + " path")
        h.eq(ex.port_named(get["port"]), ex.admin[1], probe + " port")
    notes = ex.deployment["spec"]["template"]["metadata"].get("annotations", {})
    h.eq(notes.get("prometheus.io/scrape"), "true", "prometheus.io/scrape")
    h.eq(notes.get("prometheus.io/port"), str(ex.admin[1]), "prometheus.io/port")
    h.eq(notes.get("prometheus.io/path"), "/-/metrics", "prometheus.io/path")
    target = "http://127.0.0.1:%d" % ex.listen[1]
    values = [e.get("value", "") for e in ex.app.get("env", [])]
    check([v for v in values if v == target or v.startswith(target + "/")],
          "no environment variable of the application points at %s: %r" % (target, values))


@suite.test
def draining_fits_in_the_grace_period():
    ex = Example()
    command = ex.gw["lifecycle"]["preStop"]["exec"]["command"]
    check(len(command) == 2 and command[0] == "sleep" and command[1].isdigit(), "preStop %r is not [sleep, N]" % command)
    sleep_s = int(command[1])
    shutdown_s = d.parse_duration_ms(ex.config.get("shutdown-timeout", "10s")) / 1000
    grace = ex.pod.get("terminationGracePeriodSeconds", 30)
    h.note("preStop sleep %d s + shutdown-timeout %g s, terminationGracePeriodSeconds %d" % (sleep_s, shutdown_s, grace))
    check(sleep_s > 0, "no preStop sleep: the application's last calls would find crmgate gone")
    check(sleep_s + shutdown_s < grace, "preStop sleep %d s + shutdown-timeout %g s do not fit in %d s"
          % (sleep_s, shutdown_s, grace))


@suite.test
def security_resources_image_and_autoscaler():
    ex = Example()
    docker = d.read(os.path.join(d.DEPLOY_DIR, "Dockerfile"))
    user = re.search(r"^USER (\d+)", docker, re.M)
    check(user is not None, "no numeric USER in deploy/Dockerfile")
    sc = ex.gw.get("securityContext", {})
    h.eq(sc.get("runAsUser"), int(user.group(1)), "runAsUser (the image's USER)")
    h.eq(sc.get("readOnlyRootFilesystem"), True, "readOnlyRootFilesystem (crmgate writes nothing: audit to stdout)")
    h.eq(sc.get("allowPrivilegeEscalation"), False, "allowPrivilegeEscalation")
    h.eq(sc.get("capabilities", {}).get("drop"), ["ALL"], "capabilities dropped")
    h.eq(ex.pod.get("securityContext", {}).get("runAsNonRoot"), True, "the pod's runAsNonRoot")
    version = re.search(r"project\(crmgate VERSION ([0-9.]+)", d.read(os.path.join(h.SOURCE_DIR, "CMakeLists.txt")))
    check(ex.gw["image"].endswith("/crmgate:" + version.group(1)), "image %r is not crmgate:%s"
          % (ex.gw["image"], version.group(1)))
    res = ex.gw.get("resources", {})
    for part in ("requests", "limits"):
        check("memory" in res.get(part, {}), "crmgate has no memory %s" % part)
    check(mebibytes(res["requests"]["memory"]) <= mebibytes(res["limits"]["memory"]), "memory request above the limit")
    for c in (ex.gw, ex.app):  # the autoscaler's utilisation is relative to every container's CPU request
        check("cpu" in c.get("resources", {}).get("requests", {}), "container %s has no CPU request" % c["name"])
    hpa = one(ex.docs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    h.eq((ref["kind"], ref["name"]), ("Deployment", ex.deployment["metadata"]["name"]), "the autoscaler's target")
    selector = ex.deployment["spec"]["selector"]["matchLabels"]
    labels = ex.deployment["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in selector.items()), "the pod labels %r do not match the selector %r"
          % (labels, selector))


@suite.test
def gateway_serves_load_on_the_configmap():
    ex = Example()
    root = os.path.join(suite.workdir(), "etc-crmgate")
    config = ex.materialize(root)
    cp = h.run_cli(["-t", "-c", config])
    h.eq(cp.returncode, 0, "crmgate -t on the ConfigMap:\n%s%s" % (cp.stdout_text, cp.stderr_text))
    h.note(cp.stdout_text.strip())
    limit_mib = mebibytes(ex.gw["resources"]["limits"]["memory"])
    sim = suite.start_sim()
    # the ConfigMap's configuration as is, but on ephemeral loopback ports and in front of the simulator
    gw = suite.start_gateway(sim.port, config=d.read(config), rules=os.path.join(root, "rules"),
                             threads=ex.config["threads"])
    idle = ph.rss_kib(gw.proc.pid)
    if shutil.which("h2load") is None:
        raise h.Skip("h2load is not installed (nghttp2-client)")
    body = os.path.join(suite.workdir(), "body.json")
    with open(body, "wb") as f:
        f.write(h.EXAMPLE)
    n = 4000 if h.SANITIZE else 20000
    out = subprocess.run(["h2load", "-n", str(n), "-c", "100", "-m", "10", "-t", "1", "-d", body, "-H",
                          "Content-Type: application/json", gw.url()], capture_output=True, timeout=h.timeout(60))
    text = out.stdout.decode()
    m = re.search(r"status codes: (\d+) 2xx", text)
    check(out.returncode == 0 and m is not None and int(m.group(1)) == n, "h2load:\n%s" % h.tail(text))
    with open("/proc/%d/status" % gw.proc.pid) as f:
        peak = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
    rate = re.search(r"finished in [^,]+, ([0-9.]+) req/s", text)
    h.note("RSS: %.1f MiB idle, %.1f MiB peak after %d requests (100 HTTP/2 connections x 10 streams, %s req/s); "
           "memory limit %d MiB" % (idle / 1024, peak / 1024, n, rate.group(1) if rate else "?", limit_mib))
    suite.stop(gw)
    suite.stop(sim)


suite.main()
