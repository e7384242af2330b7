"""OpenVINO: embed, classify and generate nodes, the local models other families use, and the jobs that
convert and compress models in workers (importing registers them)."""

from nodes.openvino import local_models, model_jobs, openvino_nodes  # noqa: F401
