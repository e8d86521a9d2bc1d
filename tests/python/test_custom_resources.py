"""Custom resources through the official Python client: a definition made
with ApiextensionsV1Api, its objects through CustomObjectsApi."""

import json
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

GROUP = "python.example.com"


def define_widgets(api):
    """Creates the namespaced Widget definition (once per session) and
    waits until it is established."""
    extensions = client.ApiextensionsV1Api(api)
    schema = client.V1JSONSchemaProps(
        type="object",
        properties={"spec": client.V1JSONSchemaProps(
            type="object",
            required=["size"],
            properties={
                "size": client.V1JSONSchemaProps(type="integer", minimum=1),
                "color": client.V1JSONSchemaProps(type="string", default="red"),
            })})
    definition = client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=f"widgets.{GROUP}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=GROUP,
            scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(
                plural="widgets", kind="Widget", short_names=["wd"]),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=schema))]))
    try:
        extensions.create_custom_resource_definition(definition)
    except ApiException as e:
        if e.status != 409:
            raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # No status at all until the server has accepted the names.
        status = extensions.read_custom_resource_definition(f"widgets.{GROUP}").status
        conditions = (status.conditions if status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.1)
    raise AssertionError("the definition was never established")


def widget(name, spec, labels=None):
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


def test_custom_objects_are_created_listed_patched_and_deleted(api, namespace):
    define_widgets(api)
    custom = client.CustomObjectsApi(api)
    created = custom.create_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", widget("a", {"size": 1}, {"tier": "web"}))
    assert created["metadata"]["uid"]
    assert created["spec"] == {"size": 1, "color": "red"}
    custom.create_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", widget("b", {"size": 2}))

    listed = custom.list_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", label_selector="tier=web")
    assert [w["metadata"]["name"] for w in listed["items"]] == ["a"]

    patched = custom.patch_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", "b", {"spec": {"size": 5}})
    assert patched["spec"]["size"] == 5
    assert custom.get_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", "b")["spec"]["size"] == 5

    custom.delete_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "a")
    remaining = custom.list_namespaced_custom_object(GROUP, "v1", namespace, "widgets")
    assert [w["metadata"]["name"] for w in remaining["items"]] == ["b"]

    custom.create_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", widget("c", {"size": 3}))
    custom.delete_collection_namespaced_custom_object(GROUP, "v1", namespace, "widgets")
    assert custom.list_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets")["items"] == []


def test_an_invalid_custom_object_is_422_with_its_causes(api, namespace):
    define_widgets(api)
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", widget("bad", {"size": 0}))
    assert invalid.value.status == 422
    status = json.loads(invalid.value.body)
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"] == [{
        "reason": "FieldValueInvalid",
        "field": "spec.size",
        "message": "Invalid value: 0: spec.size in body should be greater than or equal to 1",
    }]
    listed = custom.list_namespaced_custom_object(GROUP, "v1", namespace, "widgets")
    assert listed["items"] == []


def test_a_watch_on_custom_objects_sees_them_change(api, namespace):
    define_widgets(api)
    custom = client.CustomObjectsApi(api)
    listed = custom.list_namespaced_custom_object(GROUP, "v1", namespace, "widgets")
    custom.create_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", widget("w", {"size": 1}))
    custom.patch_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", "w", {"spec": {"size": 2}})
    seen = []
    for event in watch.Watch().stream(
            custom.list_namespaced_custom_object, GROUP, "v1", namespace, "widgets",
            resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=10):
        seen.append((event["type"], event["object"]["spec"]["size"]))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", 1), ("MODIFIED", 2)]
