"""
The container image, checked statically (no Docker engine runs here): deploy/Dockerfile is parsed; every COPY
source exists in the tree and is not excluded by deploy/Dockerfile.dockerignore; every apt package it names exists in Debian
(apt-cache); the build stage's commands run on exactly what it copies (so the copied subset builds, without
libsystemd); the runtime stage's packages provide every shared library that binary needs; the runtime stage is
bookworm-slim, runs as a numeric non-root USER, exposes the ports of the configuration it copies, checks health on
the admin port and stops with SIGTERM; the image's /etc/crmgate, rebuilt from its COPY lines, passes `crmgate -t`.
"""
import fnmatch
import os
import re
import shlex
import shutil

import sys

sys.dont_write_bytecode = True  # before deploylib: no __pycache__ in the source tree
import deploylib as d  # noqa: E402
from deploylib import check, h

suite = d.h.Suite("dockerfile")
DOCKERFILE = os.path.join(d.DEPLOY_DIR, "Dockerfile")


def instructions():
    """[(stage index, INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    out, stage, pending = [], -1, ""
    for raw in d.read(DOCKERFILE).splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, rest.strip()))
    check(not pending, "the Dockerfile ends inside a continued line")
    return out


def stages():
    """[(image, name)] in order."""
    result = []
    for _, word, args in instructions():
        if word == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            check(m is not None, "FROM %r" % args)
            result.append((m.group(1), m.group(2)))
    return result


def copies():
    """[(stage, --from or None, sources, destination)]."""
    result = []
    for stage, word, args in instructions():
        if word != "COPY":
            continue
        parts = shlex.split(args)
        flags = [p for p in parts if p.startswith("--")]
        paths = [p for p in parts if not p.startswith("--")]
        check(len(paths) >= 2, "COPY %r" % args)
        source_stage = None
        for f in flags:
            if f.startswith("--from="):
                source_stage = f.split("=", 1)[1]
        result.append((stage, source_stage, paths[:-1], paths[-1]))
    return result


def apt_packages(stage):
    pkgs = []
    for s, word, args in instructions():
        if s != stage or word != "RUN":
            continue
        for part in args.split("&&"):
            tokens = part.split()
            if tokens[:2] == ["apt-get", "install"]:
                pkgs += [t for t in tokens[2:] if not t.startswith("-")]
    return pkgs


def container_config():
    """The configuration the image copies to /etc/crmgate/crmgate.yaml (a file of the tree)."""
    for stage, source_stage, sources, dest in copies():
        if source_stage is None and dest == "/etc/crmgate/crmgate.yaml":
            h.eq(len(sources), 1, "sources of the COPY to /etc/crmgate/crmgate.yaml")
            return sources[0], d.import_yaml().safe_load(d.read(os.path.join(h.SOURCE_DIR, sources[0])))
    d.fail("no COPY to /etc/crmgate/crmgate.yaml")


@suite.test
def stages_user_ports_healthcheck_stopsignal():
    st = stages()
    h.eq(len(st), 2, "stages")
    h.eq(st[0], ("debian:bookworm", "build"), "the build stage")
    h.eq(st[1][0], "debian:bookworm-slim", "the runtime stage's image")
    final = len(st) - 1
    last = lambda word: [a for (s, w, a) in instructions() if s == final and w == word]  # noqa: E731
    users = last("USER")
    h.eq(len(users), 1, "USER instructions in the runtime stage")
    m = re.fullmatch(r"(\d+)(?::(\d+))?", users[0])
    check(m is not None, "USER %r is not numeric (Kubernetes' runAsNonRoot cannot check a name)" % users[0])
    check(int(m.group(1)) != 0, "USER is root")
    check(re.search(r"useradd .*--uid %s\b" % m.group(1), " ".join(last("RUN"))), "no useradd --uid %s" % m.group(1))
    h.eq(last("STOPSIGNAL"), ["SIGTERM"], "STOPSIGNAL")
    _, conf = container_config()
    listen, admin = d.hostport(conf["listen"]), d.hostport(conf["admin"])
    for what, (host, _) in (("listen", listen), ("admin", admin)):
        h.eq(host, "0.0.0.0", "%s host in the container's configuration (reachable through the port mapping)" % what)
    h.eq(conf["audit"]["path"], "-", "audit.path in the container (standard output)")
    check(isinstance(conf["threads"], int), "threads must be a number in a container, not %r" % conf["threads"])
    exposed = sorted(int(p.split("/")[0]) for a in last("EXPOSE") for p in a.split())
    h.eq(exposed, sorted([listen[1], admin[1]]), "EXPOSE vs listen and admin")
    checks = last("HEALTHCHECK")
    h.eq(len(checks), 1, "HEALTHCHECK instructions")
    check("http://127.0.0.1:%d/-/healthz" % admin[1] in checks[0], "HEALTHCHECK %r is not on the admin port's /-/healthz"
          % checks[0])
    if "curl " in checks[0]:
        check("curl" in apt_packages(final), "HEALTHCHECK uses curl, which the runtime stage does not install")
    entry = last("ENTRYPOINT") + last("CMD")
    check(entry and "/etc/crmgate/crmgate.yaml" in entry[-1], "CMD does not read /etc/crmgate/crmgate.yaml: %r" % entry)


def dockerignore_patterns():
    path = os.path.join(h.SOURCE_DIR, "deploy", "Dockerfile.dockerignore")
    if not os.path.exists(path):
        return []
    return [l.strip() for l in d.read(path).splitlines() if l.strip() and not l.startswith("#")]


@suite.test
def copy_sources_exist():
    stage_names = [name for (_, name) in stages()]
    ignore = dockerignore_patterns()
    n = 0
    for stage, source_stage, sources, dest in copies():
        if source_stage is not None:
            check(source_stage in stage_names[:stage], "COPY --from=%s: no earlier stage of that name" % source_stage)
            continue
        for src in sources:
            check(os.path.exists(os.path.join(h.SOURCE_DIR, src)), "COPY source %s does not exist in the tree" % src)
            clean = src.rstrip("/")
            hits = [p for p in ignore if fnmatch.fnmatch(clean, p.rstrip("/")) or clean.startswith(p.rstrip("/") + "/")]
            check(not hits, "COPY source %s is excluded by deploy/Dockerfile.dockerignore (%s)" % (src, hits))
            n += 1
    h.note("%d COPY sources exist" % n)


@suite.test
def apt_packages_exist_in_debian():
    d.need("apt-cache")
    lists = "/var/lib/apt/lists"
    if not os.path.isdir(lists) or not [f for f in os.listdir(lists) if "_Packages" in f]:
        raise h.Skip("apt has no package lists here (apt-get update)")
    wanted = sorted({p for stage in range(len(stages())) for p in apt_packages(stage)})
    check(wanted, "no apt-get install in the Dockerfile")
    # one apt-cache run for all (each run reads the compressed lists again)
    cp = d.run(["apt-cache", "show", "--no-all-versions"] + wanted, expect_rc=None)
    found = set(re.findall(r"^Package: (\S+)$", cp.out, re.M))
    missing = [p for p in wanted if p not in found]
    check(not missing, "not in Debian's package lists: %s\n%s" % (", ".join(missing), h.tail(cp.err)))
    for stage in range(len(stages())):
        h.note("stage %d: %s" % (stage, " ".join(apt_packages(stage))))
    check(not [p for p in apt_packages(len(stages()) - 1) if p.endswith("-dev")], "a -dev package in the runtime stage")


def build_stage_context():
    """A copy of what the build stage COPYs, at the paths it gives them (WORKDIR /src)."""
    src = os.path.join(suite.workdir(), "src")
    os.makedirs(src)
    for stage, source_stage, sources, dest in copies():
        if stage != 0 or source_stage is not None:
            continue
        for s in sources:
            origin = os.path.join(h.SOURCE_DIR, s)
            target = os.path.join(src, dest) if dest not in ("./", ".") else src
            if os.path.isdir(origin):
                shutil.copytree(origin, target, dirs_exist_ok=True, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                if dest.endswith("/") or dest in (".", "./"):
                    os.makedirs(target, exist_ok=True)
                    target = os.path.join(target, os.path.basename(s))
                shutil.copy(origin, target)
    return src


@suite.test
def build_stage_builds_from_what_it_copies():
    if h.SANITIZE:
        raise h.Skip("the image's build is a release build; it runs in the release build's ctest")
    d.need("cmake", "objdump", "dpkg")
    workdirs = [a for (s, w, a) in instructions() if s == 0 and w == "WORKDIR"]
    h.eq(workdirs, ["/src"], "WORKDIR of the build stage")
    src = build_stage_context()
    ran = 0
    for stage, word, args in instructions():
        if stage != 0 or word != "RUN":
            continue
        for part in (p.strip() for p in args.split("&&")):
            if part.startswith(("cmake ", "strip ", "build/crmgate ")):
                d.run(["sh", "-c", part.replace('"$(nproc)"', "2")], cwd=src, seconds=240)
                ran += 1
    check(ran >= 3, "only %d build commands found in the build stage" % ran)
    binary = os.path.join(src, "build", "crmgate")
    check(os.access(binary, os.X_OK), "the build stage made no build/crmgate")
    needed = re.findall(r"NEEDED\s+(\S+)", d.run(["objdump", "-p", binary]).out)
    h.note("the image's binary needs %s" % " ".join(needed))
    check("libsystemd.so.0" not in needed, "the image's binary links libsystemd (no systemd in a container)")
    # each library comes from a package the runtime stage installs, or from the base image's libc6
    runtime = set(apt_packages(len(stages()) - 1)) | {"libc6", "libgcc-s1"}
    cache = d.run(["ldconfig", "-p"]).out
    for soname in needed:
        m = re.search(r"^\s+%s \(libc6,x86-64\) => (\S+)$" % re.escape(soname), cache, re.M) or \
            re.search(r"^\s+%s \([^)]*\) => (\S+)$" % re.escape(soname), cache, re.M)
        check(m is not None, "ldconfig does not know %s" % soname)
        path = os.path.realpath(m.group(1))
        owner = None
        for candidate in (path, path.replace("/usr/lib/", "/lib/", 1), path.replace("/lib/", "/usr/lib/", 1)):
            cp = d.run(["dpkg", "-S", candidate], expect_rc=None)
            if cp.returncode == 0:
                owner = cp.out.split(":")[0].strip()
                break
        check(owner is not None, "no package owns %s" % path)
        check(owner in runtime, "%s comes from %s, which the runtime stage does not install" % (soname, owner))


@suite.test
def image_configuration_passes_check():
    root = os.path.join(suite.workdir(), "image")
    final = len(stages()) - 1
    n = 0
    for stage, source_stage, sources, dest in copies():
        if stage != final or source_stage is not None or not dest.startswith("/etc/crmgate"):
            continue
        for s in sources:
            origin = os.path.join(h.SOURCE_DIR, s)
            target = root + dest
            if os.path.isdir(origin):
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy(origin, target)
            n += 1
    check(n >= 2, "the runtime stage copies only %d sources to /etc/crmgate (configuration and rules expected)" % n)
    cp = h.run_cli(["-t", "-c", os.path.join(root, "etc/crmgate/crmgate.yaml")])
    h.eq(cp.returncode, 0, "crmgate -t on the image's /etc/crmgate:\n%s%s" % (cp.stdout_text, cp.stderr_text))
    h.note(cp.stdout_text.strip())


suite.main()
