"""The replica explorer: a slider and a button that scale nginx-hello, sample, and redraw.

In JupyterLab the learner drags the slider and presses "Send requests". Where no widget front end
runs (nbconvert executing a handout), the explorer draws its first result at once into an Output
widget, so the executed notebook carries the plot as a static image next to the widget state.
"""
from __future__ import annotations

import ipywidgets as w
from IPython.display import display

from .cluster import Cluster
from .learner import NAMESPACE
from .plots import plot_spread
from .scaling import scale_and_wait
from .traffic import sample, summarize

#: Upper end of the slider: enough to see the spread flatten, small enough for a laptop cluster.
MAX_REPLICAS = 10


def replica_explorer(cluster: Cluster, replicas: int = 3, n: int = 200, deployment: str = "nginx-hello",
                     service: str = "nginx-svc", namespace: str = NAMESPACE,
                     max_replicas: int = MAX_REPLICAS) -> w.VBox:
    """A replica slider plus 'Send requests': scale, wait for endpoints, send `n` requests, plot."""
    slider = w.IntSlider(value=replicas, min=1, max=max_replicas, description="replicas",
                         continuous_update=False)
    requests = w.IntSlider(value=n, min=50, max=1000, step=50, description="requests", continuous_update=False)
    button = w.Button(description="Send requests", button_style="primary", icon="paper-plane")
    status = w.HTML()
    out = w.Output()

    def run(_=None) -> None:
        button.disabled = True
        status.value = f"scaling {deployment} to {slider.value} and sending {requests.value} requests ..."
        try:
            eps = scale_and_wait(cluster, slider.value, deployment, service, namespace)
            frame = sample(cluster, requests.value, service, namespace)
            summary = summarize(frame, sorted(set(eps["pod"].dropna())))
            out.clear_output(wait=True)
            with out:
                display(plot_spread(summary))
            status.value = (f"{len(frame)} requests over {len(summary)} replicas "
                            f"({summary.attrs['mode']}); chi-square p = {summary.attrs['p_value']:.3g}")
        except Exception as exc:  # noqa: BLE001 — show the error in the widget, keep it usable
            status.value = f"<b>error:</b> {exc}"
        finally:
            button.disabled = False

    button.on_click(run)
    run()
    return w.VBox([w.HBox([slider, requests, button]), status, out])
