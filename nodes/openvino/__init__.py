"""OpenVINO: embed, classify and generate nodes, and the local models other families use (importing registers them)."""

from nodes.openvino import local_models, openvino_nodes  # noqa: F401
