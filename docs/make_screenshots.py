"""Re-make the README's pictures from a real run: `python docs/make_screenshots.py` with the lab
(real nodes) running. Writes docs/spread.png (500 requests over 5 replicas) and docs/cidr-table.png
(the pods table beside each node's podCIDR, as the notebook shows it, rendered by Chromium)."""
from __future__ import annotations

import os
from pathlib import Path

import k8snb

HERE = Path(__file__).parent
NS, NS2 = "k8snb-docs", "k8snb-docs-nginx"
COLUMNS = ["name", "ready", "status", "ip", "node", "node_ip", "node_pod_cidr", "in_node_pod_cidr", "in_node_network"]


def main() -> None:
    os.environ.setdefault("KUBECONFIG", str(k8snb.lab.kubeconfig_path()))
    cluster = k8snb.connect()
    try:
        k8snb.article(cluster, namespace=NS, nginx_namespace=NS2)
        k8snb.wait_deployment(cluster, "netshoot", NS, progress=False)
        eps = k8snb.scale_and_wait(cluster, 5, namespace=NS)
        frame = k8snb.sample(cluster, 500, namespace=NS)
        summary = k8snb.summarize(frame, list(eps["pod"]))
        k8snb.plot_spread(summary).savefig(HERE / "spread.png", dpi=110, bbox_inches="tight")
        table = k8snb.pods(cluster, NS)[COLUMNS]
        html = HERE / "cidr-table.html"
        html.write_text("<html><body style='font-family:sans-serif;font-size:13px;margin:8px'>"
                        + table.to_html(index=False, border=0).replace(
                            "<table", "<table id='t' style='border-collapse:collapse' cellpadding='4'")
                        + "<style>tr:nth-child(even){background:#f3f3f3} th{text-align:left;"
                          "border-bottom:1px solid #999}</style></body></html>")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1300, "height": 400})
            page.goto(html.as_uri())
            page.locator("#t").screenshot(path=str(HERE / "cidr-table.png"))
            browser.close()
        html.unlink()
        print(f"docs: {summary['count'].tolist()} requests per replica, p = {summary.attrs['p_value']:.2f}")
    finally:
        k8snb.cleanup(cluster, namespaces=[NS, NS2])


if __name__ == "__main__":
    main()
