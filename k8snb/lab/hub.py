"""JupyterHub for a classroom on the lab: the hub and its proxy on the host, each learner's
JupyterLab a pod that KubeSpawner starts in the learner's own namespace.

Configured as Zero to JupyterHub configures it (one server pod per user, the user's
ServiceAccount and namespace injected; k8snb/manifests/z2jh-values.yaml does the same on a real
cluster), from standard parts only: `jupyterhub` and `jupyterhub-kubespawner` from PyPI,
`configurable-http-proxy` from npm (installed once into ~/.cache/k8snb/npm), the single-user image
built here (singleuser.py) and published to the lab registry.

Safety, as for the rest of the lab:
- the proxy (where learners log in) listens on 127.0.0.1 only; the hub's API listens on the lab
  bridge, which is not routed off the machine, and one iptables rule lets the lab's pods reach it
  for as long as the hub runs (the lab otherwise drops everything from pods to the host);
- each learner logs in with a password of their own (hubauth.LearnerPasswordAuthenticator, constant-
  time comparison; one shared password would let every learner log in as every other), the teacher's
  API token is a service token; all random, in files of mode 0600 in the lab's private state
  directory, and kept when `up --hub` runs again (new learners get a new line);
- the hub talks to the cluster as the classroom's hub account (classroom.hub_roles: it watches pods
  and events and creates pods in learners' main namespaces only), not with the lab's admin kubeconfig;
- both processes are lab processes (PID files in the lab state): `classroom down` and `lab down`
  stop them by PID.
"""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError
from . import addons, commands, processes, singleuser
from .constants import BRIDGE_CHAIN
from .inspect import current_plan
from .kubeconfig import kubeconfig_path
from .plan import cache_dir, state_dir
from .secure import checked_dir, write_private

CHP_VERSION = "5.3.0"
PROXY_PORT = 18000  # learners' URL, on 127.0.0.1
PROXY_API_PORT = 18001  # the hub tells the proxy its routes here, on 127.0.0.1
HUB_PORT = 18081  # the hub's API, on the lab bridge: pods call it
TEACHER = "k8snb-teacher"  # the service whose token drives the hub's REST API
RULE_COMMENT = "k8snb-hub"
#: One `name password` line per learner (mode 0600): the teacher hands out each line.
PASSWORDS = "learner-passwords"
START_TIMEOUT = 60.0
#: The hub's own token (classroom.lab_hub_kubeconfig): one class day and a night; `up --hub` renews it.
HUB_TOKEN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Hub:
    url: str  # where learners log in
    api: str  # the REST API, for the teacher's token
    password_file: Path  # `name password` per line: hand each learner their own line
    token_file: Path
    image: str

    def lines(self) -> list[str]:
        return [f"JupyterHub: {self.url} (each learner logs in with their name and their own password, "
                f"one `name password` line each in {self.password_file})",
                f"  single-user image {self.image}; teacher's API token in {self.token_file}"]


def hub_dir() -> Path:
    return checked_dir(state_dir() / "hub")


def _chp() -> Path:
    """configurable-http-proxy's script, installed from the npm registry on first use."""
    prefix = cache_dir() / "npm" / f"configurable-http-proxy-{CHP_VERSION}"
    script = prefix / "node_modules" / "configurable-http-proxy" / "bin" / "configurable-http-proxy"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if not npm:
        raise LabError("the classroom's hub needs configurable-http-proxy from npm, and `npm` is not installed: "
                       "apt-get install npm, then run again")
    prefix.mkdir(parents=True, exist_ok=True)
    commands.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent",
                  f"configurable-http-proxy@{CHP_VERSION}"], f"npm install configurable-http-proxy@{CHP_VERSION}",
                 timeout=600)
    return script


def _secret(path: Path, nbytes: int) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(nbytes)
    write_private(path, value + "\n")
    return value


def read_passwords(path: Path) -> dict[str, str]:
    """`name password` per line (what start writes; hubauth checks logins against it); no file: nobody."""
    if not path.exists():
        return {}
    pairs = (line.split(None, 1) for line in path.read_text().splitlines() if line.strip())
    return {name: password.strip() for name, password in pairs}


def config(directory: Path, image: str, learners: list[str], host_ip: str) -> str:
    """The hub's jupyterhub_config.py: Zero to JupyterHub's choices for KubeSpawner, written out."""
    from ..classroom import LEARNER_ACCOUNT, NAMESPACE_PREFIX, SECOND_SUFFIX, SERVER_PORT

    settings = {
        "learners": sorted(learners), "image": image, "hub": f"http://{host_ip}:{HUB_PORT}",
        "proxy_api": f"http://127.0.0.1:{PROXY_API_PORT}", "public": f"http://127.0.0.1:{PROXY_PORT}",
        "dir": str(directory), "account": LEARNER_ACCOUNT, "prefix": NAMESPACE_PREFIX, "second": SECOND_SUFFIX,
        "port": SERVER_PORT, "teacher": TEACHER, "passwords": PASSWORDS,
    }
    return f'''# Written by k8snb (k8snb/lab/hub.py); settings below, secrets read from files beside this one.
import json, pathlib
s = json.loads({json.dumps(json.dumps(settings))})
d = pathlib.Path(s["dir"])
secret = lambda name: (d / name).read_text().strip()

c.JupyterHub.bind_url = s["public"]
c.JupyterHub.hub_bind_url = s["hub"]
c.JupyterHub.hub_connect_url = s["hub"]
c.JupyterHub.db_url = "sqlite:///" + str(d / "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = str(d / "cookie_secret")
c.JupyterHub.pid_file = str(d / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # the hub stopping stops every learner's server pod
c.ConfigurableHTTPProxy.should_start = False  # a lab process of its own, stopped by PID
c.ConfigurableHTTPProxy.api_url = s["proxy_api"]
c.ConfigurableHTTPProxy.auth_token = secret("proxy-token")

c.JupyterHub.authenticator_class = "k8snb.lab.hubauth.LearnerPasswordAuthenticator"
c.LearnerPasswordAuthenticator.passwords_file = str(d / s["passwords"])
c.Authenticator.allowed_users = set(s["learners"])
c.JupyterHub.services = [{{"name": s["teacher"], "api_token": secret("teacher-token")}}]
c.JupyterHub.load_roles = [{{"name": "k8snb-teacher", "services": [s["teacher"]],
                            "scopes": ["admin:users", "admin:servers", "list:users", "read:users", "access:servers"]}}]

c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.enable_user_namespaces = True
c.KubeSpawner.user_namespace_template = s["prefix"] + "{{username}}"
c.KubeSpawner.service_account = s["account"]
c.KubeSpawner.automount_service_account_token = True
c.KubeSpawner.environment = {{"K8SNB_NAMESPACE": s["prefix"] + "{{username}}",
                             "K8SNB_SECOND_NAMESPACE": s["prefix"] + "{{username}}" + s["second"]}}
c.KubeSpawner.image = s["image"]
c.KubeSpawner.image_pull_policy = "IfNotPresent"
c.KubeSpawner.cmd = ["/opt/k8snb/bin/jupyterhub-singleuser"]
c.KubeSpawner.port = s["port"]
c.KubeSpawner.uid = 1000
c.KubeSpawner.fs_gid = 100
c.KubeSpawner.working_dir = "/home/jovyan"
c.KubeSpawner.default_url = "/lab/tree/notebooks"
c.KubeSpawner.cpu_guarantee = 0.05
c.KubeSpawner.mem_guarantee = "256M"
c.KubeSpawner.cpu_limit = 1
c.KubeSpawner.mem_limit = "1G"
c.KubeSpawner.start_timeout = 300
c.KubeSpawner.http_timeout = 120
'''


def _hub_kubeconfig() -> str:
    """The hub's kubeconfig: the classroom's hub account (spawner rights only), never the lab's admin one."""
    import yaml

    from ..classroom import lab_hub_kubeconfig
    from ..cluster import connect

    teacher = connect(quiet=True, kubeconfig=str(kubeconfig_path()))
    return yaml.safe_dump(lab_hub_kubeconfig(teacher, HUB_TOKEN_SECONDS), sort_keys=False)


def _rule(host_ip: str) -> list[str]:
    return [BRIDGE_CHAIN, "-p", "tcp", "-d", host_ip, "--dport", str(HUB_PORT),
            "-m", "comment", "--comment", RULE_COMMENT, "-j", "RETURN"]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(learners: list[str], log=print) -> Hub:
    """Build and publish the single-user image, then start the proxy and the hub (or find them
    running); returns where learners log in."""
    plan = current_plan()
    if plan.nodes_mode != "real":
        raise LabError("the classroom's hub spawns JupyterLab pods: it needs the lab's real nodes "
                       "(`k8snb lab up --nodes real`); simulated nodes run no pod")
    state = state_dir()
    passwords = read_passwords(state / "hub" / PASSWORDS)  # kept across a restart
    if processes.read(state, "jupyterhub") or processes.read(state, "configurable-http-proxy"):
        stop()  # a new learner list or image: the hub reads its configuration at start only
    image = singleuser.build(log)
    addons.publish(state, [image])
    ref = f"{image.recipe.repository}:{image.recipe.tag}"
    directory = hub_dir()
    for name, size in (("proxy-token", 32), ("teacher-token", 32)):
        _secret(directory / name, size)
    passwords = {name: passwords.get(name) or secrets.token_urlsafe(12) for name in sorted(learners)}
    write_private(directory / PASSWORDS, "".join(f"{name} {pw}\n" for name, pw in passwords.items()))
    write_private(directory / "jupyterhub_config.py", config(directory, ref, learners, plan.host_ip))
    write_private(directory / "hub.json", json.dumps({"image": ref}))
    write_private(directory / "kubeconfig", _hub_kubeconfig())
    processes.require_ports({PROXY_PORT: "the classroom's proxy", PROXY_API_PORT: "the proxy's API"})
    processes.require_ports({HUB_PORT: "the classroom's hub"}, host=plan.host_ip)
    if commands.run(["iptables", "-C", *_rule(plan.host_ip)], check=False).returncode != 0:
        commands.run(["iptables", "-I", *_rule(plan.host_ip)[:1], "1", *_rule(plan.host_ip)[1:]],
                     "letting the lab's pods reach the hub")
    proxy_token = (directory / "proxy-token").read_text().strip()
    processes.start(state, "configurable-http-proxy", [
        shutil.which("node") or "node", str(_chp()), "--ip", "127.0.0.1", "--port", str(PROXY_PORT),
        "--api-ip", "127.0.0.1", "--api-port", str(PROXY_API_PORT),
        "--default-target", f"http://{plan.host_ip}:{HUB_PORT}",
        "--error-target", f"http://{plan.host_ip}:{HUB_PORT}/hub/error"],
        env={"CONFIGPROXY_AUTH_TOKEN": proxy_token})
    processes.start(state, "jupyterhub", [sys.executable, "-m", "jupyterhub", "-f",
                                          str(directory / "jupyterhub_config.py")],
                    env={"KUBECONFIG": str(directory / "kubeconfig")})
    hub = _hub(directory, ref)
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(hub.api + "/"):
        for name in ("configurable-http-proxy", "jupyterhub"):
            processes.check_running(state, name)
        if time.monotonic() > deadline:
            raise LabError(f"JupyterHub did not answer at {hub.api} within {START_TIMEOUT:.0f} s:\n"
                           + processes.log_tail(state, "jupyterhub"))
        time.sleep(0.5)
    return hub


def running() -> Hub | None:
    state = state_dir()
    if not processes.read(state, "jupyterhub"):
        return None
    directory = state / "hub"
    ref = json.loads((directory / "hub.json").read_text())["image"] if (directory / "hub.json").exists() else "?"
    return _hub(directory, ref)


def _hub(directory: Path, image: str) -> Hub:
    return Hub(f"http://127.0.0.1:{PROXY_PORT}/", f"http://127.0.0.1:{PROXY_PORT}/hub/api",
               directory / PASSWORDS, directory / "teacher-token", image)


def stop() -> bool:
    """Stop the hub (it stops the learners' server pods first) and the proxy; remove the rule and
    the hub's state. True if anything was running."""
    state = state_dir()
    found = processes.stop(state, "jupyterhub")
    found |= processes.stop(state, "configurable-http-proxy")
    try:
        host_ip = current_plan().host_ip
    except LabError:
        host_ip = ""
    while host_ip and subprocess.run(["iptables", "-D", *_rule(host_ip)], capture_output=True).returncode == 0:
        found = True
    shutil.rmtree(state / "hub", ignore_errors=True)
    return found
