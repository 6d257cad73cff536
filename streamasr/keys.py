"""The YAML keys of a recipe's model graph: the one mapping from what a part *is*
(names as sherpa-onnx and icefall use them) to the key a hyperpyyaml recipe gives it.

The keys are SpeechBrain's (its LibriSpeech transducer recipe uses the same), so that
exported folders load in stock SpeechBrain; nothing else in streamasr spells them.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RecipeKeys:
    sample_rate: str = "sample_rate"
    blank_index: str = "blank_index"
    # front end: waveform -> encoder input frames
    features: str = "compute_features"  # speechbrain Fbank
    normalize: str = "normalize"  # InputNormalization (global statistics)
    cnn: str = "CNN"  # ConvolutionFrontEnd (2 x stride 2)
    # encoder
    encoder: str = "Transformer"  # TransformerASR, Conformer encoder
    encoder_proj: str = "proj_enc"  # encoder output -> joiner dimension
    # decoder = the prediction network
    embedding: str = "emb"
    lstm: str = "dec"
    decoder_proj: str = "proj_dec"
    # joiner
    joint: str = "Tjoint"  # Transducer_joint (sum + nonlinearity)
    classifier: str = "transducer_lin"  # joiner output -> vocabulary logits
    # training-only heads
    ctc: str = "ctc_lin"
    model: str = "model"  # the ModuleList whose state_dict is model.ckpt

    @property
    def front_end(self) -> tuple[str, str, str]:
        return (self.features, self.normalize, self.cnn)

    @property
    def inference_graph(self) -> list[str]:
        """Every key the inference graph of a transducer is built from."""
        return [self.sample_rate, self.blank_index, *self.front_end, self.encoder, self.encoder_proj,
                self.embedding, self.lstm, self.decoder_proj, self.joint, self.classifier, self.model]


KEYS = RecipeKeys()
