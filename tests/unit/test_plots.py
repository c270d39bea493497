"""Figures: they render headless, with the bars, rows and titles a learner reads."""
from __future__ import annotations

from io import BytesIO

import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle

from k8snb import plots, traffic
from k8snb.errors import InvalidInput

SEED = 7
# A rendered PNG of a real chart is tens of kilobytes; an empty canvas compresses to a few.
MIN_PNG_BYTES = 10_000


def png_size(fig) -> int:
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    return len(buffer.getvalue())


def endpoints(k: int) -> list[dict]:
    return [{"address": f"10.244.{i}.5", "port": 80, "pod": f"nginx-hello-7d95c6dbcb-q{i}x", "node": f"w{i}"}
            for i in range(k)]


def test_short_names_keep_the_unique_suffix():
    assert plots.short_names(["nginx-hello-7d95c6dbcb-8dnbs", "nginx-hello-7d95c6dbcb-x2k9q"]) == ["8dnbs", "x2k9q"]
    assert plots.short_names(["nginx-hello-7d95c6dbcb-8dnbs", "nginx-hello-5f6b9c8d7-abcde"]) == [
        "7d95c6dbcb-8dnbs", "5f6b9c8d7-abcde"]
    assert plots.short_names(["nginx-hello-7d95c6dbcb-8dnbs"]) == ["8dnbs"]


def test_plot_spread_has_a_bar_per_replica_and_says_modeled():
    summary = traffic.summarize(traffic.modeled_sample(endpoints(4), 400, seed=SEED),
                                replicas=[e["pod"] for e in endpoints(5)])
    fig = plots.plot_spread(summary, title="nginx-svc")
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 5
    assert [t.get_text() for t in ax.get_xticklabels()] == ["q0x", "q1x", "q2x", "q3x", "q4x"]
    title = ax.get_title()
    assert "nginx-svc" in title and "400 requests" in title and "5 replicas" in title
    assert "p = " in title and "modeled" in title
    assert png_size(fig) > MIN_PNG_BYTES


def test_plot_spread_of_measured_requests_does_not_say_modeled():
    summary = traffic.summarize(traffic.modeled_sample(endpoints(2), 10, proxy_mode="ipvs"))
    summary.attrs["mode"] = "measured"
    assert "modeled" not in plots.plot_spread(summary).axes[0].get_title()


def test_plot_sweep_draws_every_replica_share():
    results = {k: traffic.modeled_sample(endpoints(k), 50 * k, seed=SEED + k) for k in (1, 2, 3)}
    fig = plots.plot_sweep(traffic.sweep_frame(results))
    ax = fig.axes[0]
    points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert points == 1 + 2 + 3
    assert "modeled" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    assert png_size(fig) > MIN_PNG_BYTES


def address_plan(**overrides) -> dict:
    plan = {
        "node_network": "172.18.0.0/16",
        "pod_ranges": ["10.244.0.0/24", "10.244.1.0/24"],
        "service_range": "10.96.0.0/12",
        "node_ips": ["172.18.0.2", "172.18.0.3"],
        "pod_ips": ["10.244.0.5", "10.244.1.7", "10.244.1.8"],
        "service_ips": ["10.96.0.1", "10.96.0.10"],
        "model": "separate",
    }
    return plan | overrides


def scatter_points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def test_plot_address_space_has_a_row_per_range_with_its_addresses():
    fig = plots.plot_address_space(address_plan())
    assert len(fig.axes) == 4
    assert [scatter_points(ax) for ax in fig.axes] == [2, 1, 2, 2]
    assert "their own range" in fig.get_suptitle()
    assert png_size(fig) > MIN_PNG_BYTES


def test_plot_address_space_flat_puts_pods_in_the_node_row():
    plan = address_plan(node_network="10.89.0.0/16", pod_ranges=["10.89.1.0/24"], service_range=None,
                        node_ips=["10.89.0.2"], pod_ips=["10.89.1.2", "10.89.1.3"], service_ips=[], model="flat")
    fig = plots.plot_address_space(plan)
    assert [scatter_points(ax) for ax in fig.axes] == [3, 2]
    assert "node subnet" in fig.get_suptitle()


def test_plot_address_space_merges_many_pod_cidrs():
    many = [f"10.244.{i}.0/24" for i in range(plots.MAX_POD_RANGE_ROWS + 1)]
    fig = plots.plot_address_space(address_plan(pod_ranges=many))
    assert len(fig.axes) == 3


def test_plot_address_space_needs_a_range():
    with pytest.raises(InvalidInput):
        plots.plot_address_space({"node_ips": ["10.0.0.1"]})
