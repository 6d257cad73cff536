"""Dynamic batches and augmentation in the data pipeline."""

from __future__ import annotations

import torch

from helpers.common import FULL_YAML


def test_dynamic_batches_never_exceed_their_duration_budget(tiny_corpus):
    import speechbrain as sb

    from streamasr.data.batching import CurriculumBatchSampler

    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(
        csv_path=str(tiny_corpus / "train.csv"), replacements={"data_root": str(tiny_corpus)}
    )
    ids = list(dataset.data_ids)
    durations = {i: float(dataset.data[i]["duration"]) for i in ids}
    longest = max(durations.values())
    for budget in (longest, 1.7 * longest, 5 * longest):
        sampler = CurriculumBatchSampler(dataset, max_batch_length=budget, num_buckets=4, shuffle=True,
                                         batch_ordering="random", length_func=lambda x: float(x["duration"]),
                                         ascending_epochs=1)
        seen = []
        for epoch in range(3):
            sampler.set_epoch(epoch)
            for batch in sampler:
                lengths = [durations[ids[i]] for i in batch]
                assert max(lengths) * len(lengths) <= budget + 1e-6, (budget, lengths)  # padded size
                seen.extend(batch)
        assert sorted(seen) == sorted(list(range(len(ids))) * 3)  # every utterance, once an epoch


def test_augmentation_runs_in_training_only(tiny_corpus):
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.dataio.batch import PaddedBatch

    from streamasr.training import TransducerBrain

    overrides = {"data_folder": str(tiny_corpus), "output_folder": "/tmp/unused", "d_model": 32, "nhead": 2,
                 "num_encoder_layers": 1, "d_ffn": 64, "dec_dim": 32, "joint_dim": 32, "output_neurons": 40}
    with open(FULL_YAML, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    calls = {"wav_augment": [], "fea_augment": []}
    for name in calls:
        module = hparams[name]
        original = module.forward

        def spy(*args, _name=name, _original=original, **kwargs):
            calls[_name].append(1)
            return _original(*args, **kwargs)

        module.forward = spy
    brain = TransducerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                            run_opts={"device": "cpu"}, checkpointer=None)
    brain.tokenizer = None
    generator = torch.Generator().manual_seed(0)
    batch = PaddedBatch([{"id": f"u{i}", "sig": torch.randn(16000, generator=generator) * 0.1,
                          "tokens_bos": torch.tensor([0, 5, 6, 7]), "tokens": torch.tensor([5, 6, 7]),
                          "wrd": "A B"} for i in range(2)])
    for stage, expected in ((sb.Stage.TRAIN, 1), (sb.Stage.VALID, 0), (sb.Stage.TEST, 0)):
        before = {name: len(c) for name, c in calls.items()}
        brain.modules.eval() if stage != sb.Stage.TRAIN else brain.modules.train()
        with torch.no_grad():
            brain.compute_forward(batch, stage)
        assert {name: len(c) - before[name] for name, c in calls.items()} == {
            "wav_augment": expected, "fea_augment": expected}, stage
