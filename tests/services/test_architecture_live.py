"""The live architecture page without a cluster (a developer's laptop, this tier): its feed says
why it shows no pods and still draws the operator's document; in a real browser the page redraws
itself when the document changes (the stage changing), without a reload.

The document is the operator's own (scalestage.specs.architecture), as the ConfigMap carries it.
"""

import json

import pytest

from scalestage import stages
from scalestage.names import Names
from scalestage.specs import architecture
from tests.fixtures import browser
from tests.fixtures.processes import free_port
from tests.polling import wait_until
from tests.services.conftest import ChirpProcess, config_for, stage_env, wait_http


def document(stage: int) -> dict:
    return architecture.document(stages.resolve({"stage": stage}), Names("chirp"))


def write_document(path, stage: int) -> None:
    """As the kubelet updates a mounted ConfigMap: a new file put in place in one step."""
    new = path.with_name(path.name + ".new")
    new.write_text(json.dumps(document(stage)))
    new.replace(path)


def test_the_feed_without_a_cluster_draws_the_document_and_says_why_no_pods(
        migrated_db, make_app):
    env = stage_env(3, database=migrated_db.primary_url, replicas=migrated_db.replica_urls,
                    CHIRP_ARCHITECTURE=json.dumps(document(3)))
    client = make_app(config_for(env)).test_client()
    response = client.get("/architecture/live")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"  # the stage-5 edge must not cache it
    model = response.get_json()
    assert (model["stage"], model["stageName"], model["live"]) == (3, "load-balanced", False)
    assert model["problem"] == "not running in a Kubernetes cluster"
    assert [(c["name"], c["spof"], c["pods"]) for c in model["components"]] == [
        ("web", False, None), ("db-primary", True, None), ("db-replica", False, None)]
    assert model["lesson"]["nextFixes"] == stages.STAGES[3].next_fixes
    assert model["served"]["pod"] == "test-pod-3"
    assert model["served"]["db"] in {"replica-0", "replica-1", "primary"}  # a read was routed


def test_the_page_embeds_the_first_model_and_loads_its_script(migrated_db, make_app):
    env = stage_env(2, database=migrated_db.primary_url,
                    CHIRP_ARCHITECTURE=json.dumps(document(2)))
    html = make_app(config_for(env)).test_client().get("/architecture").get_data(as_text=True)
    assert 'data-feed="/architecture/live"' in html and "architecture.js" in html
    assert '"stageName": "separate-db"' in html or '"stageName":"separate-db"' in html


@pytest.fixture
def web_at_stage_2(migrated_db, tmp_path):
    """`chirp web` (gunicorn) reading its document from a file, as a web pod does."""
    path = tmp_path / "architecture.json"
    write_document(path, 2)
    port = free_port()
    env = stage_env(2, database=migrated_db.primary_url, replicas=migrated_db.replica_urls,
                    CHIRP_ARCHITECTURE_FILE=str(path), PORT=str(port))
    del env["CHIRP_STAGE"]  # as in a pod: the stage is the document's
    server = ChirpProcess(["web"], env, str(tmp_path / "web.log"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", proc=server)
        yield base, path
    finally:
        server.stop()


@pytest.mark.skipif(browser.available() is not None, reason=str(browser.available()))
def test_in_a_browser_the_page_redraws_itself_when_the_stage_changes(web_at_stage_2,
                                                                     screenshots):
    base, path = web_at_stage_2
    with browser.chromium() as page:
        page.get(base + "/architecture")
        drawn = wait_until(lambda: page.execute_script(
            "return [...document.querySelectorAll('#live [data-component]')]"
            ".map(e => e.dataset.component)"), timeout=10, what="the diagram drawn")
        assert drawn == ["client", "web", "db-primary"]
        spofs = page.execute_script(
            "return [...document.querySelectorAll('#live .component.spof')].map(e => "
            "[e.dataset.component, getComputedStyle(e).borderTopColor])")
        assert spofs == [["web", "rgb(221, 34, 34)"], ["db-primary", "rgb(221, 34, 34)"]]
        assert "not running in a Kubernetes cluster" in page.find_element(
            "id", "access").text
        assert page.execute_script(
            "return document.querySelectorAll('#live svg.arrows line').length") == 2
        screenshots.take(page, "services-stage-2-no-cluster")

        write_document(path, 3)  # the operator steps 2 -> 3: only the document changes
        wait_until(lambda: page.find_element("css selector", "main h1").text
                   == "Stage 3: load-balanced", timeout=3, interval=0.1,
                   what="the page showing stage 3 without a reload")
        drawn = page.execute_script(
            "return [...document.querySelectorAll('#live [data-component]')]"
            ".map(e => e.dataset.component)")
        assert drawn == ["client", "web", "db-primary", "db-replica"]
        assert "Sessions live in each web process" in page.find_element("id", "lesson").text
        shares = wait_until(lambda: page.find_element("css selector",
                                                      '[data-share="pods"]').text,
                            what="the shares drawn")
        assert "test-pod-2: 100 %" in shares
        screenshots.take(page, "services-stage-3-no-cluster")
