"""The learning-curve figure logged to MLflow, and the offline page `dvc plots show` renders
into (checked with DVC's own renderer)."""

from __future__ import annotations

import re

import pytest

from pipeline.plots import learning_curves_figure, offline_page

HISTORY = [
    {"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "train_accuracy": 0.5, "val_accuracy": 0.6},
    {"epoch": 2, "train_loss": 0.5, "val_loss": 0.55, "train_accuracy": 0.7, "val_accuracy": 0.65},
    {"epoch": 3, "train_loss": 0.3, "val_loss": 0.58, "train_accuracy": 0.9, "val_accuracy": 0.64},
]


def test_the_figure_plots_train_and_validation_per_epoch():
    figure = learning_curves_figure(HISTORY, "bilstm")
    assert figure.get_suptitle() == "bilstm"
    loss, accuracy = figure.axes
    for axes, metric in ((loss, "loss"), (accuracy, "accuracy")):
        assert axes.get_title() == metric and axes.get_xlabel() == "epoch"
        train, validation = axes.get_lines()
        assert (train.get_label(), validation.get_label()) == ("train", "validation")
        assert list(train.get_xdata()) == [1, 2, 3]
        assert list(train.get_ydata()) == [row[f"train_{metric}"] for row in HISTORY]
        assert list(validation.get_ydata()) == [row[f"val_{metric}"] for row in HISTORY]


def test_the_figure_is_closed_so_that_figures_do_not_pile_up():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    learning_curves_figure(HISTORY, "base")
    assert plt.get_fignums() == before


def test_a_history_without_validation_is_refused():
    rows = [{k: v for k, v in row.items() if not k.startswith("val_")} for row in HISTORY]
    with pytest.raises(KeyError, match="val_loss"):
        learning_curves_figure(rows, "base")


@pytest.fixture(scope="module")
def page() -> str:
    return offline_page()


def test_the_page_inlines_vega_and_loads_nothing_from_the_network(page):
    assert re.findall(r"<script[^>]*>", page) == ['<script type="text/javascript">']
    assert "vegaEmbed" in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)


def test_dvc_renders_its_plots_into_the_page(page):
    from dvc_render.html import HTML

    rendered = HTML(page, refresh_seconds=5).with_element('<div id="loss"></div>').embed()
    assert '<div id="loss"></div>' in rendered
    assert '<meta http-equiv="refresh" content="5">' in rendered
    assert "{plot_divs}" not in rendered and "{refresh_tag}" not in rendered


def test_dvc_refuses_a_page_without_the_plots_placeholder(page):
    from dvc_render.html import HTML, MissingPlaceholderError

    with pytest.raises(MissingPlaceholderError):
        HTML(page.replace("{plot_divs}", ""))
