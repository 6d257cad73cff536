"""Shipping a trained model: the folder stock SpeechBrain ``StreamingASR`` loads
(``folder``), its model card (``model_card``), the Hugging Face hub upload (``hub``);
room for ONNX and sherpa-onnx exporters."""

from streamasr.errors import ExportError
from streamasr.export.folder import INFERENCE_TAIL, check_model_folder, export, inference_yaml, select_checkpoints
from streamasr.export.hub import push_to_hub
from streamasr.export.model_card import model_card
from streamasr.model import EXPORTED_FILES

__all__ = ["EXPORTED_FILES", "INFERENCE_TAIL", "ExportError", "check_model_folder", "export", "inference_yaml",
           "model_card", "push_to_hub", "select_checkpoints"]
