"""The report page (attnlens.report.html): self-contained, every outside string escaped, every
internal link resolving, and, in headless Chromium, the pictures and tables drawn and the
confusion-matrix cells leading to their examples."""

from __future__ import annotations

import dataclasses
import io
import random
import re
from html import unescape

import pytest
import torch

from attnlens.report import build_report
from attnlens.report.html import excerpt, highlight, render_html

HOSTILE = '<script>alert(1)</script> & "quotes" <b>bold</b>'
NON_LATIN = "素晴らしい映画 😀 très bien, отлично"
LABELS = ["negative", 'so-so <i>"mixed"</i> & more', "positive"]
WORDS = ["good", "bad", "fine", "plot", "acting", "boring", "great", "awful", "movie", "film", "not", "very"]


@pytest.fixture(scope="module")
def report(tokenizer):
    from attnlens import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        id2label=dict(enumerate(LABELS)))
    model = BertForSequenceClassification(config).eval()
    rng = random.Random(3)
    texts = [HOSTILE, NON_LATIN] + [" ".join(rng.choices(WORDS, k=rng.randint(3, 9))) for _ in range(38)]
    return build_report(model, tokenizer, texts, [i % 3 for i in range(len(texts))], model_name=HOSTILE,
                        data_name="reviews <i>.csv", faithfulness_examples=10, progress=False)


@pytest.fixture(scope="module")
def page(report) -> str:
    return render_html(report)


def test_the_page_fetches_nothing(page):
    for needle in ("http://", "https://", "<link", "<script", "url("):
        assert needle not in page.lower(), needle
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", page)


def test_outside_strings_appear_only_escaped(page):
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<b>" not in page and "<i>" not in page
    assert "so-so &lt;i&gt;&quot;mixed&quot;&lt;/i&gt; &amp; more" in page


def test_every_internal_link_has_its_target(page, report):
    ids = [unescape(i) for i in re.findall(r'\sid="([^"]*)"', page)]
    assert len(ids) == len(set(ids))
    targets = [unescape(t) for t in re.findall(r'href="#([^"]*)"', page)]
    assert targets and set(targets) <= set(ids)
    cells = {t for t in targets if t.startswith("cell-")}
    assert cells == {f"cell-{key.replace(',', '-')}" for key, examples in report.cell_examples.items() if examples}


def test_labels_calibration_and_sections_of_the_report(page, report):
    for label in LABELS:
        assert label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in page
    c = report.calibration
    assert f"{c.before.ece:.4f}" in page and f"{c.after.ece:.4f}" in page
    assert c.temperature_source == "fit on this data" and "optimistic" in page and "attnlens calibrate" in page
    for section in ("metrics", "calibration-section", "words", "errors", "slices", "faithfulness", "cells"):
        assert f'<section id="{section}">' in page
    assert "Skipped" in render_html(dataclasses.replace(report, faithfulness=None))


def test_word_tables_quote_their_example_texts(report, page):
    cited = {s.example for group in (*report.words, *report.error_words) for s in (*group.by_total, *group.by_mean)}
    assert cited and cited == set(report.word_examples)
    stat = next(s for group in report.words for s in group.by_total)
    assert excerpt(report.word_examples[stat.example], stat.word) in page


def test_highlight_cuts_the_original_text_and_escapes_each_piece():
    text = "<b>x</b> & y"
    shaded = highlight(text, [(9, 10, 0.5), (0, 3, 1.0), (1, 4, -0.2)])  # the last overlaps the first span
    assert shaded.startswith('<mark style="background: rgba(255,140,0,1.000)" title="score 1.0000">&lt;b&gt;</mark>'
                             '<mark style="background: rgba(59,130,246,0.200)" title="score -0.2000">x</mark>')
    assert "x</mark>&lt;/b&gt; <mark" in shaded and ">&amp;</mark> y" in shaded
    assert unescape(re.sub(r"<[^>]+>", "", shaded)) == text
    assert highlight(text, []) == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    # Offsets count characters (code points), as Python's and the tokenizer's do: an emoji is one.
    assert highlight(NON_LATIN, [(8, 9, 1.0)]).split("<mark")[1].endswith(">😀</mark> très bien, отлично")


@pytest.fixture(scope="module")
def browser(page, tmp_path_factory):
    from browser_driver import headless_chromium, requested_urls

    folder = tmp_path_factory.mktemp("report-page")
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    (folder / "profile").mkdir()
    with headless_chromium(folder / "profile", (1100, 900)) as driver:
        driver.get("about:blank")  # leave the start tab's page and forget its requests
        requested_urls(driver)
        driver.get(path.as_uri())
        assert requested_urls(driver) == [path.as_uri()]  # the page itself, nothing more
        yield driver


def test_pictures_and_tables_are_drawn(browser, report):
    from selenium.webdriver.common.by import By

    for element_id in ("confusion-matrix", "reliability-diagram", "per-class", "calibration"):
        element = browser.find_element(By.ID, element_id)
        assert element.is_displayed() and element.size["width"] > 0 and element.size["height"] > 0, element_id
    n = len(LABELS)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#confusion-matrix rect.cell")) == n * n
    assert len(browser.find_elements(By.CSS_SELECTOR, "#confusion-matrix a")) == sum(
        1 for examples in report.cell_examples.values() if examples)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#per-class tbody tr")) == n + 2
    # No element came from the data: the hostile strings are text.
    for tag in ("script", "b", "i"):
        assert browser.find_elements(By.TAG_NAME, tag) == [], tag
    assert HOSTILE in browser.find_element(By.TAG_NAME, "h1").text


def test_the_screenshot_shows_a_page(browser):
    from PIL import Image

    with Image.open(io.BytesIO(browser.get_screenshot_as_png())) as image:
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=pixels.width * pixels.height)
    assert len(colours) > 16, len(colours)
    assert any(r < 80 and g < 80 and b < 80 for _, (r, g, b) in colours), "no dark text"
    assert any(b > 180 and r < 120 for _, (r, g, b) in colours), "no blue (right-answer cells, links)"


def test_a_confusion_matrix_cell_leads_to_its_examples(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    links = browser.find_elements(By.CSS_SELECTOR, "#confusion-matrix a")
    link = links[-1]
    target = link.get_dom_attribute("href")[1:]
    link.click()
    WebDriverWait(browser, 5).until(lambda d: d.execute_script("return location.hash") == f"#{target}")
    assert browser.execute_script("return document.querySelector(':target').id") == target
    shown = browser.find_element(By.ID, target)
    assert shown.find_elements(By.CSS_SELECTOR, "tbody tr")
