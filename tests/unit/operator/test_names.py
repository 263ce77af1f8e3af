"""Names: one place for what the operator calls things and how it selects them."""

from scalestage.names import Names, selector_string
from scalestage.specs import web


def test_selector_string_is_sorted_and_comma_separated():
    assert selector_string({"b": "2", "a": "1"}) == "a=1,b=2"
    assert selector_string({}) == ""


def test_pod_selector_is_the_workload_selector_as_a_string():
    names = Names("chirp")
    selector = names.pod_selector(web.COMPONENT)
    assert selector == selector_string(names.selector(web.COMPONENT))
    assert "app.kubernetes.io/instance=chirp" in selector.split(",")


def test_children_selector_names_the_instance_and_the_manager():
    assert Names("chirp").children_selector == (
        "app.kubernetes.io/instance=chirp,app.kubernetes.io/managed-by=scalestage-operator")
