"""Figures for the notebooks: the spread of requests, a replica sweep, and the address space.

Each function builds a `matplotlib.figure.Figure` directly, never through pyplot's global state, so
it works headless (tests, nbclient, handouts) and shows itself when it is a cell's last value in
Jupyter. Nothing is shown or closed here: the caller owns the figure.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from . import cidr
from .errors import InvalidInput

FIGURE_WIDTH_IN = 8.0
SPREAD_HEIGHT_IN = 4.0
SWEEP_HEIGHT_IN = 4.5
# Height of one range's row in the address-space figure, and of its title band.
ROW_HEIGHT_IN = 0.9
TITLE_BAND_IN = 0.9
# Above this many node podCIDRs the figure draws their common range instead: beyond a handful of
# rows the picture stops being readable, and the common range tells the same story.
MAX_POD_RANGE_ROWS = 6
# Width of the strip of points for one replica count in the sweep, in units of the x axis (one unit
# between neighbouring replica counts), so strips never touch.
STRIP_WIDTH = 0.6
# Address ticks per row: first, middle and last address of the range.
ADDRESS_TICKS = 3
# Room above the tallest point of the sweep for its p-value label, as a factor of the axis height.
LABEL_HEADROOM = 1.15
# Margin either side of a range's row, as a share of the range, so a point on the first or last
# address (a node at .2 of a /16) is drawn whole instead of cut by the frame.
ROW_MARGIN = 0.03
# Above this many bars the pod-name suffixes (five characters) no longer fit side by side.
UPRIGHT_LABELS_MAX = 8

_ADDRESS_KINDS = (
    ("node_ips", "node IPs", "tab:blue", "s"),
    ("pod_ips", "pod IPs", "tab:orange", "o"),
    ("service_ips", "Service IPs", "tab:green", "^"),
)


def short_names(names: Sequence[str]) -> list[str]:
    """Pod names without the dash-separated parts they all share: 'nginx-hello-7d95c6dbcb-8dnbs'
    and 'nginx-hello-7d95c6dbcb-x2k9q' become '8dnbs' and 'x2k9q', which fit under a bar."""
    parts = [str(name).split("-") for name in names]
    if not parts:
        return []
    shared = 0
    while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    return ["-".join(p[shared:]) for p in parts]


def _mode_note(mode: str | None) -> str:
    return " (modeled, not measured)" if mode == "modeled" else ""


def plot_spread(summary: pd.DataFrame, title: str | None = None) -> Figure:
    """A bar per replica with its request count, and a dashed line at the count an even spread gives.

    `summary` is `traffic.summarize()`'s frame; the title states n, the replicas, the chi-square
    p-value and says 'modeled' when the requests were replayed from kube-proxy's rules.
    """
    if summary.empty:
        raise InvalidInput("the summary has no replica to plot")
    counts = summary["count"].astype(int)
    n, k = int(counts.sum()), len(summary)
    stats = (f"{n} requests over {k} replicas, chi-square p = {summary.attrs.get('p_value', float('nan')):.3g}"
             f"{_mode_note(summary.attrs.get('mode'))}")
    fig = Figure(figsize=(FIGURE_WIDTH_IN, SPREAD_HEIGHT_IN), layout="constrained")
    ax = fig.subplots()
    labels = short_names(summary["replica"].tolist())
    ax.bar(range(k), counts, color="tab:blue", label="requests answered")
    ax.axhline(n / k, linestyle="--", color="black", label=f"even spread ({n / k:.1f} each)")
    ax.set_xticks(range(k), labels, rotation=30 if k > UPRIGHT_LABELS_MAX else 0)
    ax.set_xlabel("replica (pod name suffix)")
    ax.set_ylabel("requests")
    fig.legend(loc="outside lower center", ncols=2)
    ax.set_title(f"{title}\n{stats}" if title else stats)
    return fig


def plot_sweep(sweep: pd.DataFrame) -> Figure:
    """For each replica count, every replica's share as a point, with the ideal 1/k as a dash.

    `sweep` is `traffic.sweep_frame()`'s frame. Points spread sideways by rank, not at random, so
    the figure is the same on every run; each strip is labelled with its chi-square p-value.
    """
    if sweep.empty:
        raise InvalidInput("the sweep has no rows to plot")
    fig = Figure(figsize=(FIGURE_WIDTH_IN, SWEEP_HEIGHT_IN), layout="constrained")
    ax = fig.subplots()
    values = sorted(sweep["replicas"].unique())
    for x, k in enumerate(values):
        group = sweep[sweep["replicas"] == k]
        offsets = [0.0] if len(group) == 1 else [
            STRIP_WIDTH * (i / (len(group) - 1) - 0.5) for i in range(len(group))]
        ax.scatter([x + o for o in offsets], group["share"], color="tab:blue", zorder=3)
        ax.hlines(1 / k, x - STRIP_WIDTH / 2, x + STRIP_WIDTH / 2, colors="black", linestyles="--")
        ax.annotate(f"p = {group['p_value'].iloc[0]:.2g}", (x, group["share"].max()),
                    textcoords="offset points", xytext=(0, 8), ha="center")
    ax.set_xticks(range(len(values)), [str(k) for k in values])
    ax.set_xlabel("replicas")
    ax.set_ylabel("share of requests")
    ax.set_ylim(0, max(1.0, sweep["share"].max()) * LABEL_HEADROOM)
    ax.legend(handles=[Line2D([], [], color="tab:blue", marker="o", linestyle="", label="one replica"),
                       Line2D([], [], color="black", linestyle="--", label="even share 1/k")])
    mode = sweep.attrs.get("mode") or sweep["mode"].iloc[0]
    ax.set_title(f"Share of requests per replica as the Deployment scales{_mode_note(mode)}")
    return fig


def _ranges(plan: dict) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """(row label, range) per row. A range the plan inferred rather than read (the node network from
    the node IPs, the Service range from one ClusterIP) or merged here says 'inferred' in its label."""
    rows = []
    if plan.get("node_network"):
        name = "node network\n(inferred)" if plan.get("node_network_inferred") else "node network"
        rows.append((name, ipaddress.ip_network(plan["node_network"], strict=False)))
    pod_ranges = list(plan.get("pod_ranges") or ())
    if len(pod_ranges) > MAX_POD_RANGE_ROWS:
        rows.append((f"pod range\n(inferred from {len(pod_ranges)} podCIDRs)", cidr.pod_range(pod_ranges)))
    else:
        rows.extend(("node podCIDR", ipaddress.ip_network(r, strict=False)) for r in pod_ranges)
    if plan.get("service_range"):
        name = "Service range\n(inferred)" if plan.get("service_range_inferred") else "Service range"
        rows.append((name, ipaddress.ip_network(plan["service_range"], strict=False)))
    return rows


def _position(network, ip) -> float:
    """Where `ip` sits in `network`, 0 (first address) to 1 (last): exact even for IPv6, where
    the raw integers are beyond what a float axis resolves."""
    return (int(ip) - int(network.network_address)) / (network.num_addresses - 1 or 1)


def _address_ticks(ax, network) -> None:
    first, last = int(network.network_address), int(network.broadcast_address)
    ticks = [first + (last - first) * i // (ADDRESS_TICKS - 1) for i in range(ADDRESS_TICKS)]
    ax.set_xticks([_position(network, t) for t in ticks], [str(ipaddress.ip_address(t)) for t in ticks])
    ax.set_xlim(-ROW_MARGIN, 1 + ROW_MARGIN)


def plot_address_space(plan: dict) -> Figure:
    """One row per range (node network, each node's podCIDR, Service range), addresses as points.

    Ranges sit far apart (192.168.0.0/16 and 10.244.0.0/16), so each row has its own address axis.
    In a flat cluster the pod IPs land in the node network's row; in a separate one they do not.
    `plan` keys: node_network, pod_ranges, service_range, node_ips, pod_ips, service_ips, and
    optionally model ('flat', 'separate', ...) for the title and node_network_inferred /
    service_range_inferred, which label a guessed range 'inferred' (`network.address_plan` sets them).
    """
    rows = _ranges(plan)
    if not rows:
        raise InvalidInput("the plan has no range to draw: give node_network, pod_ranges or service_range")
    points = {key: [ipaddress.ip_address(ip) for ip in plan.get(key) or ()] for key, *_ in _ADDRESS_KINDS}
    fig = Figure(figsize=(FIGURE_WIDTH_IN, TITLE_BAND_IN + ROW_HEIGHT_IN * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    drawn: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for ax, (name, network) in zip(axes, rows):
        ax.axvspan(0, 1, color="0.9")
        for key, _, color, marker in _ADDRESS_KINDS:
            inside = [ip for ip in points[key] if ip.version == network.version and ip in network]
            drawn.update(inside)
            ax.scatter([_position(network, ip) for ip in inside], [0] * len(inside), color=color, marker=marker, zorder=3)
        _address_ticks(ax, network)
        ax.set_yticks([])
        ax.set_ylabel(f"{name}\n{network}", rotation=0, ha="right", va="center")
    outside = {ip for ips in points.values() for ip in ips} - drawn
    if outside:
        axes[-1].set_xlabel(f"{len(outside)} address(es) lie outside every range drawn")
    fig.legend(handles=[Line2D([], [], color=color, marker=marker, linestyle="", label=label)
                        for _, label, color, marker in _ADDRESS_KINDS], loc="outside lower center", ncols=3)
    model = plan.get("model")
    # The label's words on the first line, its parenthesis (the model's key and examples) below.
    label = str(cidr.MODEL_LABELS.get(model, model)).replace(" (", "\n(", 1)
    fig.suptitle(f"Address space: {label}" if model else "Address space")
    return fig
