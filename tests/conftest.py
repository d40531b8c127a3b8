"""Shared fixtures: one small local Ray per test module, as Ray's own test suites do."""

from __future__ import annotations

import os

import pytest

import securemed.transport  # noqa: F401 - before anything imports grpc: TLS 1.3 only

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray without dashboard and with a small object store; shut down after the module."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


#: hospitals the test federation's CA certifies; "intruder" holds a valid certificate but is
#: not a member of any test federation
CERTIFIED = (*(f"hospital-{i}" for i in range(1, 9)), "intruder")


class TestPki:
    """A federation CA with certificates for :data:`CERTIFIED` and the aggregator."""

    def __init__(self, root) -> None:
        from securemed.pki import init_pki

        self.layout = init_pki(root, CERTIFIED)

    def identity(self, name: str):
        from securemed.pki import load_identity

        return load_identity(self.layout, name)

    @property
    def aggregator(self):
        return self.identity("aggregator")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> TestPki:
    """One federation PKI for the whole session (P-256 keys take milliseconds)."""
    return TestPki(tmp_path_factory.mktemp("federation-pki"))


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory) -> TestPki:
    """Another CA issuing the same names: its certificates must be worthless to us."""
    return TestPki(tmp_path_factory.mktemp("foreign-pki"))


@pytest.fixture(scope="session")
def trained_report_checkpoint(tmp_path_factory):
    """A small report model trained in-process until it writes FINDINGS and IMPRESSION (about
    half a minute on 2 cores), saved as a checkpoint the way the training job saves one."""
    import torch

    from securemed.models.report_checkpoint import TrainingFacts, save_report_checkpoint
    from securemed.report_training.config import ReportJobConfig
    from securemed.report_training.dataset import load_split
    from securemed.report_training.model_setup import build_job_model, job_tokenizer
    from securemed.report_training.trainer import ReportTrainer

    torch.manual_seed(0)
    job = ReportJobConfig.model_validate(
        {
            "data": {"image_size": 32, "train_samples": 512, "private_samples": 0,
                     "test_samples": 8},
            "model": {"d_model": 32, "d_ff": 64, "encoder_layers": 1, "decoder_layers": 1,
                      "heads": 2, "vision_width": 8, "vocab_size": 300, "max_report_tokens": 96},
            "optimisation": {"batch_size": 32, "learning_rate": 0.01, "workers": 1},
            "variants": [{"name": "standard"}],
        }
    )  # fmt: skip
    data = load_split(job.data, "train")
    tokenizer = job_tokenizer(job, data.texts)
    model = build_job_model(job, tokenizer)
    epochs = 25
    trainer = ReportTrainer(model, data, tokenizer, optimisation=job.optimisation, epochs=epochs)
    for _ in range(epochs):
        trainer.train_epoch()
    facts = TrainingFacts(
        modes=("standard",),
        steps=trainer.global_step,
        epochs=epochs,
        train_examples=len(data),
        data={**job.data.model_dump(mode="json"), "split": "train", "init_from": None},
    )
    directory = tmp_path_factory.mktemp("served-model") / "standard" / "model"
    digest = save_report_checkpoint(directory, model.eval(), tokenizer, facts)
    return directory, digest
