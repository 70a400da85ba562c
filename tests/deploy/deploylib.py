"""
Shared helpers of the deployment tests (tests/deploy/test_*.py, ctest label `deploy`). They reuse the end-to-end
harness (tests/e2e/harness.py: Suite, processes, checks) and add what the deployment artefacts need.

Environment (set by ctest, see tests/CMakeLists.txt; the defaults let a file run directly):
  CRMGATE_BUILD_DIR        the build directory (default: <source>/build)
  CRMGATE_HAVE_SYSTEMD     "1" when the build has sd_notify (libsystemd)
  CRMGATE_INSTALL_PREFIX   the build's CMAKE_INSTALL_PREFIX
and those of the harness (CRMGATE_BIN, CRMSIM_BIN, CRMGATE_SOURCE_DIR, CRMGATE_SANITIZE).
"""
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness as h  # noqa: E402
from harness import check, fail  # noqa: E402,F401

DEPLOY_DIR = os.path.join(h.SOURCE_DIR, "deploy")
BUILD_DIR = os.path.abspath(os.environ.get("CRMGATE_BUILD_DIR") or os.path.join(h.SOURCE_DIR, "build"))
HAVE_SYSTEMD = os.environ.get("CRMGATE_HAVE_SYSTEMD", "") in ("1", "ON", "on", "TRUE", "true")
INSTALL_PREFIX = os.environ.get("CRMGATE_INSTALL_PREFIX") or "/usr/local"


def import_yaml():
    """PyYAML: Debian's python3-yaml, also from an interpreter other than Debian's (as harness.import_h2 does)."""
    try:
        import yaml
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import yaml
        except ImportError:
            raise h.Skip("PyYAML is not installed (apt-get install python3-yaml; deploy/install-deps.sh does)")
    return yaml


def need(*tools):
    """Skips the test when a tool is missing (deploy/install-deps.sh installs them all)."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise h.Skip("not installed: %s (deploy/install-deps.sh installs it)" % ", ".join(missing))


def run(argv, seconds=60, cwd=None, env=None, input=None, expect_rc=0):
    """Runs a command to completion; fails with its output when its exit status is not expect_rc (None: any)."""
    try:
        cp = subprocess.run(argv, capture_output=True, cwd=cwd, env=env, input=input, timeout=h.timeout(seconds))
    except subprocess.TimeoutExpired:
        fail("%s did not finish within %.0f s" % (" ".join(argv), h.timeout(seconds)))
    cp.out = cp.stdout.decode("utf-8", "replace")
    cp.err = cp.stderr.decode("utf-8", "replace")
    if expect_rc is not None and cp.returncode != expect_rc:
        fail("%s exited with %d (expected %d):\n%s%s" % (" ".join(argv), cp.returncode, expect_rc, h.tail(cp.out),
                                                         h.tail(cp.err)))
    return cp


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def unit_directives(text):
    """A systemd unit as [(section, key, value)], in order (comments and blank lines skipped)."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        check("=" in line, "not a KEY=VALUE line in the unit: %r" % line)
        key, value = line.split("=", 1)
        out.append((section, key.strip(), value.strip()))
    return out


def unit_values(text, key, section="Service"):
    return [v for (s, k, v) in unit_directives(text) if s == section and k == key]


def parse_duration_ms(text):
    """crmgate's durations: 500ms, 30s, 2m, or a bare number of milliseconds."""
    text = str(text).strip()
    for suffix, factor in (("ms", 1), ("s", 1000), ("m", 60000)):
        if text.endswith(suffix) and text[:-len(suffix)].isdigit():
            return int(text[:-len(suffix)]) * factor
    check(text.isdigit(), "not a duration: %r" % text)
    return int(text)


def hostport(text):
    host, _, port = str(text).rpartition(":")
    check(host and port.isdigit(), "not HOST:PORT: %r" % text)
    return host.strip("[]"), int(port)
