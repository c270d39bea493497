"""Handouts: execute every course notebook against a cluster and export it as self-contained HTML.

`build_handouts()` (the CLI's `k8snb handouts`) runs each notebook top to bottom with nbclient (the
venv's python3 kernel, the notebooks' own folder as working directory, a timeout per cell), then
exports it with nbconvert's `lab` template. Each handout opens with a header naming the cluster
context, the Kubernetes version, the date and the run time; an `index.html` links them all.

Offline by design: nbconvert's default HTML loads require.js, MathJax and the widget HTML manager
from CDNs. Here require.js and `@jupyter-widgets/html-manager` come from the npm registry once
(`npm pack`, version-pinned, cached in ~/.cache/k8snb/web/) and are copied next to the handouts;
MathJax is left out (the course writes no math). Widget state is embedded, so the replica slider
renders in the HTML without a kernel.
"""
from __future__ import annotations

import html
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import K8snbError

#: Seconds one cell may run (the sweep scales five times and waits for pods each time).
CELL_TIMEOUT = 600
KERNEL_NAME = "python3"
#: Version-pinned browser assets, fetched with `npm pack` into WEB_CACHE.
REQUIREJS = ("requirejs", "2.3.8")
HTML_MANAGER = ("@jupyter-widgets/html-manager", "1.0.15")
WEB_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "k8snb" / "web"
#: Folder, inside the output, that holds the local copies of the scripts.
STATIC = "_static"

#: The lab template without MathJax: the course has no math, and a CDN script would fail offline.
#: require.js resolves the widget modules (and webpack their fonts) from baseUrl: _static/.
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}
<script src="{{ resources.require_js_url }}"></script>
<script>require.config({baseUrl: "_static/"});</script>
{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
"""
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@dataclass(frozen=True)
class Handout:
    notebook: str
    html: str
    title: str
    seconds: float
    error: str = ""


def repo_notebooks() -> Path:
    """The course's notebooks/ folder: next to the package in a checkout, else ./notebooks."""
    here = Path(__file__).resolve().parent.parent / "notebooks"
    return here if here.is_dir() else Path.cwd() / "notebooks"


# --- offline assets --------------------------------------------------------------------------------
def _npm_package(name: str, version: str) -> Path:
    """The extracted `package/` folder of name@version, fetched once with `npm pack`."""
    target = WEB_CACHE / f"{name.replace('/', '__').lstrip('@')}-{version}"
    if (target / "package" / "package.json").exists():
        return target / "package"
    npm = shutil.which("npm")
    if not npm:
        raise K8snbError(f"the handouts need {name}@{version} from the npm registry, and `npm` is not installed; "
                         "install Node.js and npm (apt-get install npm), then run again")
    WEB_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WEB_CACHE) as tmp:
        proc = subprocess.run([npm, "pack", f"{name}@{version}", "--silent"], cwd=tmp, capture_output=True,
                              text=True, timeout=300)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise K8snbError(f"`npm pack {name}@{version}` failed: {proc.stderr.strip()[-500:]}")
        staging = Path(tmp) / "x"
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(staging, filter="data")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), target)
    return target / "package"


def install_assets(output: Path) -> dict[str, str]:
    """Copy require.js and the widget HTML manager (with its fonts) into output/_static; return the
    relative URLs nbconvert's HTMLExporter should use.

    The manager's bundle asks require.js for `@jupyter-widgets/...` modules, and webpack looks for
    the icon fonts next to those module paths, so the files sit under _static/@jupyter-widgets/.
    """
    static = output / STATIC
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(_npm_package(*REQUIREJS) / "require.js", static / "require.js")
    dist = _npm_package(*HTML_MANAGER) / "dist"
    scope = static / "@jupyter-widgets"
    bundle = scope / "html-manager" / "dist"
    bundle.mkdir(parents=True, exist_ok=True)
    shutil.copy2(dist / "embed-amd.js", bundle / "embed-amd.js")
    for font in dist.iterdir():
        if font.suffix in (".woff", ".woff2", ".ttf", ".eot", ".svg"):
            shutil.copy2(font, bundle / font.name)
            shutil.copy2(font, scope / font.name)
    return {"require_js_url": f"{STATIC}/require.js",
            "widget_renderer_url": f"{STATIC}/@jupyter-widgets/html-manager/dist/embed-amd.js"}


def drop_closed_widgets(nb) -> int:
    """Remove outputs showing a widget that was closed or hidden by the end of the run (finished
    progress bars): they would render as empty space. Returns how many were removed."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})

    def hidden(model_id: str) -> bool:
        model = state.get(model_id)
        if model is None:
            return True
        layout = state.get(str(model["state"].get("layout", "")).removeprefix("IPY_MODEL_"), {}).get("state", {})
        return layout.get("visibility") == "hidden" or layout.get("display") == "none"

    removed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = [o for o in cell.outputs
                if not (WIDGET_VIEW in o.get("data", {}) and hidden(o["data"][WIDGET_VIEW].get("model_id")))]
        removed += len(cell.outputs) - len(kept)
        cell.outputs = kept
    return removed


# --- execution -------------------------------------------------------------------------------------
def _kubeconfig_for(context: str, workdir: Path) -> str:
    """A kubeconfig whose current context is `context` (for the kernels), merged as kubectl would."""
    from kubernetes.config.kube_config import KubeConfigMerger
    import yaml

    from .cluster import _kubeconfig_files, _lab_kubeconfig

    files = _kubeconfig_files() or [p for p in [_lab_kubeconfig()] if p]
    if not files:
        raise K8snbError("no kubeconfig to take the context from: set KUBECONFIG or start the lab")
    merged = KubeConfigMerger(os.pathsep.join(files)).config
    data = merged.value if hasattr(merged, "value") else merged
    names = [c["name"] for c in data.get("contexts") or []]
    if context not in names:
        raise K8snbError(f"unknown context {context!r}; known: {', '.join(names) or 'none'}")
    data = dict(data)
    data["current-context"] = context
    path = workdir / "kubeconfig"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return str(path)


def _header_cell(cluster, mode: str, seconds: float | None, when: datetime):
    from nbformat.v4 import new_markdown_cell

    ran = f", ran in {seconds:.1f} s" if seconds is not None else ""
    text = (f"> **Handout**: executed {when:%Y-%m-%d %H:%M} UTC against context `{cluster.context}`, "
            f"Kubernetes {cluster.version} ({cluster.flavor}){ran}. Traffic results: **{mode}**.")
    cell = new_markdown_cell(text)
    cell["id"] = "k8snb-handout-header"
    return cell


def run_notebook(nb, path: Path, timeout: int = CELL_TIMEOUT, env: dict[str, str] | None = None) -> None:
    """Execute `nb` (read from `path`) in the notebook's own folder, its kernel on Unix sockets in
    a private temporary directory: over TCP, even on loopback, any local user could connect to the
    kernel, and ipykernel warns about it in every log. The kernel is shut down afterwards (nbclient
    leaves a kernel manager it was handed running)."""
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="k8snb-kernel-") as runtime:
        km = KernelManager(kernel_name=KERNEL_NAME, transport="ipc",
                           connection_file=os.path.join(runtime, "kernel.json"))
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=False,
                                store_widget_state=True, resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute(**({"env": env} if env is not None else {}))
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)


def execute(path: Path, env: dict[str, str], timeout: int = CELL_TIMEOUT):
    """Run one notebook top to bottom in its own folder; return (notebook, seconds, error text)."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    error = ""
    try:
        run_notebook(nb, path, timeout, env)
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
    return nb, time.monotonic() - started, error


def _exporter(urls: dict[str, str]):
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[jinja2.DictLoader({"k8snb.html.j2": _TEMPLATE})])
    exporter.template_file = "k8snb.html.j2"
    exporter.require_js_url = urls["require_js_url"]
    exporter.widget_renderer_url = urls["widget_renderer_url"]
    exporter.mathjax_url = ""
    exporter.embed_images = True
    return exporter


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            return cell.source.lstrip()[2:].splitlines()[0].strip()
    return fallback


#: The article the course follows, cited by title, series, publisher and date (no address is known).
ARTICLE = ("「連載 第4回 Kubernetesネットワークの理解」 (part 4 of the series Understanding Kubernetes "
           "networking), TECH ARTICLE, ジェニファーソフト (JenniferSoft) blog, 2024年04月01日")


def _index(output: Path, handouts: list[Handout], cluster, mode: str, when: datetime) -> Path:
    rows = "\n".join(
        f'<li><a href="{html.escape(h.html)}">{html.escape(h.title)}</a> '
        f'<span class="meta">({h.seconds:.1f} s{", FAILED: " + html.escape(h.error) if h.error else ""})</span></li>'
        for h in handouts)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>k8snb handouts</title>
<style>body{{font-family:sans-serif;max-width:48em;margin:2em auto;line-height:1.5}}
.meta{{color:#666;font-size:90%}}</style></head>
<body><h1>Kubernetes networking, hands-on: handouts</h1>
<p>Following {html.escape(ARTICLE)}.</p>
<p>Executed {when:%Y-%m-%d %H:%M} UTC against context <code>{html.escape(cluster.context)}</code>,
Kubernetes {html.escape(cluster.version)} ({html.escape(cluster.flavor)}). Traffic results: <b>{mode}</b>.</p>
<ol>
{rows}
</ol></body></html>
"""
    index = output / "index.html"
    index.write_text(page)
    return index


def build_handouts(output: str | os.PathLike = "handouts", notebooks: list[str] | None = None,
                   context: str | None = None, keep_executed: bool = False) -> Path:
    """Execute the notebooks (default: every notebooks/*.ipynb) and write HTML handouts plus an
    index.html into `output`; return the index's path. Prints each notebook's run time. With
    `keep_executed`, each executed notebook is also written there as `<name>.ipynb` (what the
    handout was exported from: the tests read its outputs instead of executing it again).

    Raises K8snbError naming the notebooks that failed (their handouts are still written, with the
    error in the output, so the failure can be read).
    """
    from .cluster import connect
    from .probe import can_carry_traffic

    out = Path(output).resolve()
    paths = [Path(p).resolve() for p in notebooks] if notebooks else sorted(repo_notebooks().glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise K8snbError(f"no such notebook: {', '.join(missing)}" if missing else
                         f"no notebooks found in {repo_notebooks()}")
    cluster = connect(context, quiet=True)
    mode = "measured" if can_carry_traffic(cluster) else "modeled"
    print(f"k8snb: executing {len(paths)} notebooks against {cluster.describe()}; traffic {mode}")
    out.mkdir(parents=True, exist_ok=True)
    urls = install_assets(out)
    exporter = _exporter(urls)
    handouts: list[Handout] = []
    when = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="k8snb-handouts-") as tmp:
        env = dict(os.environ)
        if context:
            env["KUBECONFIG"] = _kubeconfig_for(context, Path(tmp))
        elif not env.get("KUBECONFIG") and cluster.kubeconfig:
            env["KUBECONFIG"] = cluster.kubeconfig
        env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        for path in paths:
            nb, seconds, error = execute(path, env)
            drop_closed_widgets(nb)
            if keep_executed:
                import nbformat

                nbformat.write(nb, out / path.name)
            nb.cells.insert(0, _header_cell(cluster, mode, seconds, when))
            body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
            target = out / f"{path.stem}.html"
            target.write_text(body)
            handouts.append(Handout(path.name, target.name, _title(nb, path.stem), seconds, error))
            print(f"  {path.name}: {seconds:.1f} s" + (f"  FAILED: {error}" if error else ""))
    index = _index(out, handouts, cluster, mode, when)
    failed = [h.notebook for h in handouts if h.error]
    if failed:
        raise K8snbError(f"{len(failed)} notebook(s) failed: {', '.join(failed)}; their handouts show the error "
                         f"(index: {index})")
    return index
