"""The front end: waveform -> encoder input frames (40 ms each by default).

* ``geometry``: sample / frame arithmetic (``FrontEndGeometry``);
* ``features``: ``FrontEnd`` (Fbank -> normaliser -> CNN), the one definition that
  training, inference and the exporters build from, with exact chunk windows;
* ``stock``: SpeechBrain's ``StreamingFeatureWrapper`` over it, as Python and as YAML;
* ``paths``: how a stream's audio becomes chunks (``exact`` or ``stock``), one strategy
  object chosen once.
"""

from streamasr.frontend.features import FbankFrontEnd, FrontEnd
from streamasr.frontend.geometry import FrontEndGeometry, front_end_geometry
from streamasr.frontend.paths import FEATURE_PATHS, ExactPath, FeaturePath, StockPath, WindowPath, feature_path
from streamasr.frontend.stock import stock_feature_wrapper, stock_feature_wrapper_yaml

__all__ = ["FEATURE_PATHS", "FbankFrontEnd", "ExactPath", "FeaturePath", "FrontEnd", "FrontEndGeometry", "StockPath", "WindowPath",
           "feature_path", "front_end_geometry", "stock_feature_wrapper", "stock_feature_wrapper_yaml"]
