"""Figures: the learning curves logged to MLflow, and the page `dvc plots show` renders into.

DVC's own page loads Vega from a CDN, so offline it shows nothing. offline_page() inlines Vega,
Vega-Lite and Vega-Embed (from the vl-convert package, no network) instead.
"""

from __future__ import annotations

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plots</title>
    <script type="text/javascript">
VEGA_BUNDLE
    </script>
    <style>table { border-spacing: 15px; }</style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def learning_curves_figure(history: list[dict], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [row[f"train_{metric}"] for row in history], marker="o", label="train")
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def offline_page() -> str:
    import vl_convert

    return PAGE.replace("VEGA_BUNDLE", vl_convert.javascript_bundle())
