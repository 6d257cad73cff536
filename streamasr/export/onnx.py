"""ONNX export (``streamasr export-onnx``): the exporter lives beside the streaming step
it exports (``streamasr.streaming.onnx_export``), so that the engine can export the cells
it needs into a cache; this is its front door among the exporters."""

from streamasr.streaming.onnx import OnnxFolder, verify_onnx_folder
from streamasr.streaming.onnx_export import OnnxExport, cached_onnx_folder, cell_name, export_onnx

__all__ = ["OnnxExport", "OnnxFolder", "cached_onnx_folder", "cell_name", "export_onnx", "verify_onnx_folder"]
