"""The fine-tuning job: one function per stage, `run_job` reads like the table of contents.

The same code runs as `python training/train.py`, `attnlens train` (one process) and under
`accelerate launch` / `torchrun` (DDP over any number of processes and machines): Accelerate decides
the world, this module never branches on it except to let the main process do the file system work.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import DistributedType, ProjectConfiguration, set_seed
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from attnlens import DEFAULT_BASE_MODEL, load_tokenizer
from attnlens.baselines.job_config import build_baseline_model
from attnlens.calibration import attach_calibration, write_calibration
from attnlens.errors import AttnlensError, CheckpointError, ConfigError
from attnlens.loading import load_model
from attnlens.padding import sorted_by_length
from attnlens.report.build import Report, build_report, ece_summary
from attnlens.temperature_fit import fit_model_temperature
from attnlens.training.batching import ClassBalancedSampler, LengthGroupedSampler, PaddingCollator
from attnlens.training.checkpointing import (
    JobState,
    all_finite,
    remove_checkpoints,
    remove_unfinished_checkpoints,
    resolve_resume,
    save_checkpoint,
)
from attnlens.training.config import JobConfig, TrainingConfig
from attnlens.training.data import load_examples, tokenize_examples
from attnlens.training.evaluation import evaluate
from attnlens.training.hub_push import preflight_push, push_model
from attnlens.training.metrics import ClassificationMetrics
from attnlens.training.model_card import jsonable, render_model_card, write_model_card
from attnlens.training.optim import build_optimizer, build_scheduler

METRICS_FILE = "metrics.json"
DEFAULT_BASE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what attnlens.DEFAULT_BASE_MODEL holds
BEST_MODEL_DIR = "best"
# Longest input a trained baseline reads at prediction time; BERT's window, so both see the same text.
BASELINE_MAX_LENGTH = 512


class TrainingDivergedError(AttnlensError):
    """The loss or the gradients stopped being finite numbers; the message names the step."""


@dataclass
class Datasets:
    train: datasets.Dataset
    validation: datasets.Dataset


def base_model_path(config: JobConfig) -> str:
    return DEFAULT_BASE_MODEL if config.model.base_model == "default" else config.model.base_model


def resolve_mixed_precision(requested: str) -> str:
    """`auto` -> bf16 where the hardware has it (recent CUDA GPUs), full precision elsewhere."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def has_accelerator_device() -> bool:
    accelerator_api = getattr(torch, "accelerator", None)  # torch >= 2.6 knows CUDA, XPU, MPS, ...
    if accelerator_api is not None:
        return bool(accelerator_api.is_available())
    return torch.cuda.is_available()


def build_accelerator(config: JobConfig) -> Accelerator:
    output_dir = Path(config.output.dir)
    return Accelerator(
        # Without a GPU, Accelerate only forms a process group (gloo, MULTI_CPU) when told it runs on
        # CPU; otherwise every launched process would silently train alone.
        cpu=not has_accelerator_device(),
        mixed_precision=resolve_mixed_precision(config.training.mixed_precision),
        gradient_accumulation_steps=config.training.gradient_accumulation_steps,
        log_with=config.output.log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def load_datasets(config: JobConfig, accelerator: Accelerator) -> Datasets:
    """Read and validate both splits before any weights are loaded: bad rows fail in seconds."""
    data = config.data
    columns = (data.text_column, data.label_column, data.label_names)
    with accelerator.main_process_first():
        train = load_examples(data.train, data.train_split, data.dataset_config, *columns)
        if data.validation is not None:
            validation = load_examples(data.validation, data.validation_split, data.dataset_config, *columns)
        else:
            split = train.train_test_split(
                test_size=data.validation_fraction, seed=config.training.seed, shuffle=True
            )
            train, validation = split["train"], split["test"]
    return Datasets(train=train, validation=validation)


def build_model(config: JobConfig) -> nn.Module:
    id2label = dict(enumerate(config.data.label_names))
    if config.model.arch != "encoder":  # a pre-BERT baseline on the base model's vocabulary (docs/baselines.md)
        return build_baseline_model(
            config.model.arch, config.model.baseline,
            tokenizer=load_tokenizer(base_model_path(config), revision=config.model.revision),
            base_model=base_model_path(config), id2label=id2label, max_length=BASELINE_MAX_LENGTH,
            dropout=config.model.dropout, revision=config.model.revision,
        )
    # BERT, RoBERTa or DistilBERT: the base model's config.json says which (attnlens.loading).
    model = load_model(base_model_path(config), revision=config.model.revision, id2label=id2label)
    if config.model.dropout is not None:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = config.model.dropout
        for self_attention in (m for m in model.modules() if hasattr(m, "dropout_p")):
            self_attention.dropout_p = config.model.dropout
    return model


def effective_max_length(config: JobConfig, model: nn.Module) -> int:
    return min(config.model.max_length, model.config.max_tokens)


def tokenize_datasets(
    raw: Datasets, tokenizer: Any, max_length: int, accelerator: Accelerator
) -> Datasets:
    with accelerator.main_process_first():
        return Datasets(
            train=tokenize_examples(raw.train, tokenizer, max_length),
            validation=tokenize_examples(raw.validation, tokenizer, max_length),
        )


def resolve_class_weights(
    class_weights: str | list[float], labels: Sequence[int], label_names: list[str], split: str = "training split"
) -> list[float] | None:
    """`training.class_weights` as numbers, one per label; None for plain cross-entropy.

    `balanced` is scikit-learn's rule, n_samples / (n_classes x count of the class): every class
    then carries the same total weight in an epoch, whatever its share of the examples.
    """
    if isinstance(class_weights, list):
        return [float(weight) for weight in class_weights]
    if class_weights == "none":
        return None
    counts = Counter(labels)
    missing = [name for label, name in enumerate(label_names) if counts[label] == 0]
    if missing:
        raise ConfigError(
            f"training.class_weights=balanced: class {missing[0]!r} has no examples in the {split}, so its "
            "weight n_samples / (n_classes x 0) is infinite; add examples of it, drop it from data.label_names, "
            "or give explicit weights (training.class_weights=[...])"
        )
    return [len(labels) / (len(label_names) * counts[label]) for label in range(len(label_names))]


def build_train_sampler(train: datasets.Dataset, training: TrainingConfig) -> LengthGroupedSampler:
    """`training.sampler`: every example once per epoch, or classes drawn equally often."""
    if training.sampler == "balanced":
        return ClassBalancedSampler(train["length"], train["labels"], training.batch_size, training.seed,
                                    group_by_length=training.group_by_length)
    return LengthGroupedSampler(train["length"], training.batch_size, training.seed,
                                group_by_length=training.group_by_length)


def build_dataloaders(
    tokenized: Datasets, tokenizer: Any, config: JobConfig
) -> tuple[DataLoader, DataLoader]:
    """Training batches from `training.sampler`, longest-first evaluation batches, both dynamically padded.

    Each loader gets a private `torch.Generator`: PyTorch draws a base seed for every new iterator,
    and drawing it from the global RNG would shift the dropout stream of a resumed run.
    """
    training = config.training
    collator = PaddingCollator(tokenizer.pad_token_id)
    train_sampler = build_train_sampler(tokenized.train, training)
    train_loader = DataLoader(
        tokenized.train.with_format(columns=["input_ids", "labels"]),
        batch_size=training.batch_size,
        sampler=train_sampler,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(training.seed),
    )
    eval_loader = DataLoader(
        tokenized.validation.with_format(columns=["input_ids", "labels"]),
        batch_size=training.eval_batch_size,
        sampler=sorted_by_length(tokenized.validation["length"], longest_first=True),
        collate_fn=collator,
        generator=torch.Generator().manual_seed(training.seed),
    )
    return train_loader, eval_loader


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, rdrop_alpha: float = 0.0,
                        label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (against targets smoothed by `label_smoothing`, each example weighted by its
    class's entry of `class_weights` when given); with `rdrop_alpha` > 0, R-Drop's loss over a batch
    that was run twice.

    Weighted, the cross-entropy is PyTorch's: the weighted sum over examples divided by the sum of
    their weights, so all-equal weights give the plain loss.

    With R-Drop the logits hold the batch twice, stacked (`2 x batch` rows), each copy under its own
    dropout mask. The loss is the paper's (the two copies' cross-entropy plus alpha/2 x their
    symmetric KL, summed over examples) divided by 2N, so its cross-entropy part is on the scale of
    the plain loss and the learning rate means the same with it on or off. The KL term compares the
    two passes with each other, not with the label, so it stays unweighted.
    """
    if rdrop_alpha == 0:
        return F.cross_entropy(logits.float(), labels, weight=class_weights, label_smoothing=label_smoothing)
    log_p, log_q = F.log_softmax(logits.float(), dim=-1).chunk(2)
    # cross_entropy of log-probabilities equals that of the logits (log_softmax is idempotent).
    cross_entropy = F.cross_entropy(torch.cat([log_p, log_q]), torch.cat([labels, labels]),
                                    weight=class_weights, label_smoothing=label_smoothing)
    symmetric_kl = (F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
                    + F.kl_div(log_p, log_q, log_target=True, reduction="batchmean"))
    return cross_entropy + rdrop_alpha / 4 * symmetric_kl


def training_inputs(batch: dict[str, torch.Tensor], rdrop_alpha: float = 0.0) -> dict[str, torch.Tensor]:
    """The model's inputs for one training step. With R-Drop, the batch twice in one forward pass:
    every row draws its own dropout mask, and one pass of 2N rows is cheaper than two of N."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if rdrop_alpha == 0:
        return inputs
    return {name: torch.cat([value, value]) for name, value in inputs.items()}


class FineTuningJob:
    """Holds the prepared objects of one run; `run()` is the training loop."""

    def __init__(self, config: JobConfig, command: str) -> None:
        self.config = config
        self.command = command
        self.output_dir = Path(config.output.dir)
        preflight_push(config.output)
        self.accelerator = build_accelerator(config)
        self.resume_from = resolve_resume(config.training.resume, self.output_dir)
        # Same seed everywhere for the model's fresh classifier head (DDP also broadcasts rank 0's).
        set_seed(config.training.seed)
        raw = load_datasets(config, self.accelerator)
        # Resolved before the model loads, so a class missing from the training split fails in seconds.
        self.class_weights = resolve_class_weights(
            config.training.class_weights, raw.train["labels"], config.data.label_names,
            split=f"training split (data.train={config.data.train!r})",
        )
        self.class_weight_tensor = None if self.class_weights is None else torch.tensor(
            self.class_weights, dtype=torch.float32, device=self.accelerator.device
        )
        self.model = build_model(config)
        self.tokenizer = load_tokenizer(base_model_path(config), revision=config.model.revision)
        self.max_length = effective_max_length(config, self.model)
        tokenized = tokenize_datasets(raw, self.tokenizer, self.max_length, self.accelerator)
        self.num_train_examples = len(tokenized.train)
        self.num_validation_examples = len(tokenized.validation)
        self.validation = raw.validation  # texts and labels, for the calibration and the report at the end
        train_loader, eval_loader = build_dataloaders(tokenized, self.tokenizer, config)
        with self.accelerator.main_process_first():
            self.metrics = ClassificationMetrics()
        optimizer = build_optimizer(self.model, config.training)
        self.model, self.optimizer, self.train_loader, self.eval_loader = self.accelerator.prepare(
            self.model, optimizer, train_loader, eval_loader
        )
        training = config.training
        self.steps_per_epoch = math.ceil(len(self.train_loader) / training.gradient_accumulation_steps)
        total = training.epochs * self.steps_per_epoch
        self.total_steps = min(total, training.max_steps) if training.max_steps else total
        warmup_steps = int(training.warmup_ratio * self.total_steps)
        # Stepped by us once per optimizer step (not prepared: Accelerate would step it once per process).
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, warmup_steps)
        self.state = JobState()
        self.evaluation_seconds = 0.0  # evaluations and best-model saves, reported apart from training
        self.accelerator.register_for_checkpointing(self.scheduler, self.state)
        # Different dropout masks per process; restored from the checkpoint on resume anyway.
        set_seed(training.seed, device_specific=True)

    # ----------------------------------------------------------------------------------- stages
    def restore_or_start_fresh(self) -> None:
        remove_unfinished_checkpoints(self.accelerator, self.output_dir)
        if self.resume_from is None:
            if self.config.training.resume == "none":
                remove_checkpoints(self.accelerator, self.output_dir)
            return
        self.accelerator.print(f"resuming from {self.resume_from}")
        try:
            self.accelerator.load_state(str(self.resume_from))
        except ValueError as error:  # torch's optimizer check, which names no setting
            if "parameter group" not in str(error):
                raise
            raise CheckpointError(
                f"{self.resume_from}: its optimizer state has other parameter groups than this run "
                f"(training.layerwise_lr_decay={self.config.training.layerwise_lr_decay} or the model differ "
                f"from the run that wrote it; torch: {error}); resume with the same settings, or start "
                "over with training.resume=none"
            ) from error

    def run(self) -> dict[str, Any]:
        self.restore_or_start_fresh()
        accelerator, training = self.accelerator, self.config.training
        tracker_config = {
            f"{section}.{key}": jsonable(value)
            for section, values in self.config.to_dict().items()
            for key, value in values.items()
        }
        accelerator.init_trackers("attnlens", config=tracker_config)
        accelerator.print(
            f"training on {self.num_train_examples} examples, {accelerator.num_processes} process(es), "
            f"{self.total_steps} optimizer steps, mixed precision {accelerator.mixed_precision}"
        )
        progress = tqdm(
            total=self.total_steps,
            initial=self.state.global_step,
            disable=not accelerator.is_local_main_process,
            desc="training",
        )
        started = time.perf_counter()
        examples_at_start = self.state.examples_seen
        try:
            while not self.finished() and self.state.epoch < training.epochs:
                self.train_one_epoch(progress)
            if self.state.last_eval_step != self.state.global_step:
                self.evaluate_and_track()
        finally:
            progress.close()
        elapsed = time.perf_counter() - started
        audit = self.calibrate_and_report()
        summary = self.write_outputs(elapsed, self.state.examples_seen - examples_at_start, audit)
        accelerator.end_training()
        return summary

    def finished(self) -> bool:
        return self.state.global_step >= self.total_steps or self.state.stopped_early

    def train_one_epoch(self, progress: tqdm) -> None:
        accelerator, training, state = self.accelerator, self.config.training, self.state
        self.train_loader.set_epoch(state.epoch)
        batches = self.train_loader
        if state.batches_in_epoch:
            # Resumed mid-epoch: same permutation (seeded by epoch), minus what was already consumed.
            batches = accelerator.skip_first_batches(self.train_loader, state.batches_in_epoch)
            batches.set_epoch(state.epoch)
        self.model.train()
        window_loss, window_batches = 0.0, 0
        for batch in batches:
            with accelerator.accumulate(self.model):
                logits = self.model(**training_inputs(batch, training.rdrop_alpha)).logits
                loss = classification_loss(logits, batch["labels"], training.rdrop_alpha, training.label_smoothing,
                                           self.class_weight_tensor)
                mean_loss = float(accelerator.reduce(loss.detach(), reduction="mean"))
                if not math.isfinite(mean_loss):
                    raise TrainingDivergedError(
                        f"non-finite training loss ({mean_loss}) at step {state.global_step + 1} "
                        f"(epoch {state.epoch}, batch {state.batches_in_epoch + 1}); lower training.learning_rate "
                        "or check the data; no checkpoint was written from this state"
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    self.clip_gradients()
                self.optimizer.step()
                self.optimizer.zero_grad()
            state.batches_in_epoch += 1
            state.examples_seen += len(batch["labels"]) * accelerator.num_processes
            window_loss += mean_loss
            window_batches += 1
            if not accelerator.sync_gradients:
                continue
            self.scheduler.step()
            state.global_step += 1
            progress.update(1)
            if state.global_step % training.log_every_steps == 0:
                accelerator.log(
                    {"train/loss": window_loss / window_batches, "train/learning_rate": self.scheduler.get_last_lr()[0]},
                    step=state.global_step,
                )
                progress.set_postfix(loss=f"{window_loss / window_batches:.4f}")
                window_loss, window_batches = 0.0, 0
            if training.eval_every_steps and state.global_step % training.eval_every_steps == 0:
                self.evaluate_and_track()
            if training.checkpoint_every_steps and state.global_step % training.checkpoint_every_steps == 0:
                self.checkpoint()
            if self.finished():
                break
        if state.batches_in_epoch >= len(self.train_loader):
            state.epoch += 1
            state.batches_in_epoch = 0
        if state.last_eval_step != state.global_step:
            self.evaluate_and_track()

    def clip_gradients(self) -> None:
        max_norm = self.config.training.max_grad_norm
        norm = self.accelerator.clip_grad_norm_(self.model.parameters(), max_norm if max_norm else math.inf)
        # fp16's grad scaler skips overflowing steps by itself; anywhere else an inf/nan norm is divergence.
        if self.accelerator.mixed_precision != "fp16" and norm is not None and not torch.isfinite(norm).all():
            raise TrainingDivergedError(
                f"non-finite gradient norm ({float(norm)}) at step {self.state.global_step + 1}; "
                "lower training.learning_rate or set training.max_grad_norm"
            )

    def evaluate_and_track(self) -> dict[str, float]:
        started = time.perf_counter()
        try:
            return self._evaluate_and_track()
        finally:
            self.evaluation_seconds += time.perf_counter() - started

    def _evaluate_and_track(self) -> dict[str, float]:
        state, training = self.state, self.config.training
        results = evaluate(self.model, self.eval_loader, self.accelerator, self.metrics)
        state.last_eval_step = state.global_step
        state.history.append({"step": state.global_step, "epoch": state.epoch, **results})
        self.accelerator.log({f"eval/{name}": value for name, value in results.items()}, step=state.global_step)
        self.accelerator.print(
            f"step {state.global_step}: " + ", ".join(f"{k}={v:.4f}" for k, v in results.items() if k != "num_examples")
        )
        value = results[training.metric_for_best]
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step, state.best_results = value, state.global_step, results
            state.evaluations_without_improvement = 0
            self.save_best_model()
        else:
            state.evaluations_without_improvement += 1
            patience = training.early_stopping_patience
            if patience and state.evaluations_without_improvement >= patience:
                self.accelerator.print(
                    f"early stopping at step {state.global_step}: no {training.metric_for_best} improvement "
                    f"in {patience} evaluations (best {state.best_metric:.4f} at step {state.best_step})"
                )
                state.stopped_early = True
        return results

    def ensure_finite_weights(self, what: str) -> None:
        """Collective check: under FSDP each process sees only its shard, and all must agree to stop."""
        local_bad = torch.tensor(0.0 if all_finite(self.model) else 1.0, device=self.accelerator.device)
        if float(self.accelerator.reduce(local_bad, reduction="sum")) > 0:
            raise TrainingDivergedError(
                f"non-finite weights at step {self.state.global_step}; refusing to write the {what}"
            )

    def checkpoint(self) -> None:
        self.ensure_finite_weights("checkpoint")
        save_checkpoint(
            self.accelerator, self.output_dir, self.state.global_step, self.config.training.keep_checkpoints
        )

    def save_best_model(self) -> None:
        """Hub layout in `best/`, written beside and swapped in, so `best/` is never half-written."""
        self.ensure_finite_weights("best model")
        accelerator = self.accelerator
        best = self.output_dir / BEST_MODEL_DIR
        staging = self.output_dir / f"{BEST_MODEL_DIR}.tmp"
        model = accelerator.unwrap_model(self.model)
        if accelerator.distributed_type == DistributedType.FSDP:
            # Sharded parameters: gather the full state dict (a collective) into a plain copy.
            full_state = accelerator.get_state_dict(self.model)
            if accelerator.is_main_process:
                model = type(model)(model.config)
                model.load_state_dict(full_state)
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            model.save_pretrained(staging, tokenizer=self.tokenizer)
            write_model_card(staging, self.model_card())
            shutil.rmtree(best, ignore_errors=True)
            staging.rename(best)
        accelerator.wait_for_everyone()

    def model_card(self, report: Report | None = None) -> str:
        return render_model_card(
            self.config,
            base_model=DEFAULT_BASE_MODEL_ID if self.config.model.base_model == "default"
            else self.config.model.base_model,
            results=self.state.best_results,
            best_step=self.state.best_step,
            command=self.command,
            num_processes=self.accelerator.num_processes,
            mixed_precision=self.accelerator.mixed_precision,
            class_weights=self.class_weights,
            report=report,
        )

    def calibrate_and_report(self) -> dict[str, Any]:
        """The main process fits the best model's temperature on the validation split (stored in
        best/config.json), audits it there (best/report.html, best/report.json) and rewrites the
        model card with the per-class tables; the others wait. Returns what metrics.json records."""
        accelerator, training, output = self.accelerator, self.config.training, self.config.output
        best = self.output_dir / BEST_MODEL_DIR
        results: dict[str, Any] = {}
        if accelerator.is_main_process and (training.calibrate or output.report) and best.is_dir():
            model = load_model(best).to(accelerator.device)
            tokenizer = load_tokenizer(best)
            texts, labels = self.validation["text"], self.validation["labels"]
            name = f"validation split ({self.config.data.validation or 'held out of data.train'})"
            if training.calibrate:
                fit = fit_model_temperature(model, tokenizer, texts, labels, fit_on=name, max_length=self.max_length,
                                            batch_size=training.eval_batch_size)
                write_calibration(best, fit.record)
                attach_calibration(model.config, fit.record)
                results["calibration"] = fit.summary()
                accelerator.print(f"temperature {fit.temperature:.3f} (validation NLL {fit.before.nll:.4f} -> "
                                  f"{fit.after.nll:.4f}) stored in {best / 'config.json'}")
            report = None
            if output.report:
                report = build_report(model, tokenizer, texts, labels, row_numbers=[i + 1 for i in range(len(texts))],
                                      model_name=str(best), data_name=name, max_length=self.max_length,
                                      progress=accelerator.is_local_main_process)
                html_path, _ = report.write(best)
                results["report"] = str(html_path)
                accelerator.print(f"report: {html_path} ({ece_summary(report)})")
            write_model_card(best, self.model_card(report))
        accelerator.wait_for_everyone()
        return results

    def write_outputs(self, elapsed: float, examples: int, audit: dict[str, Any] | None = None) -> dict[str, Any]:
        accelerator, state = self.accelerator, self.state
        summary = {
            "metric_for_best": self.config.training.metric_for_best,
            "best_metric": state.best_metric,
            "best_step": state.best_step,
            "best": state.best_results,
            "final": state.history[-1] if state.history else {},
            "global_step": state.global_step,
            "total_steps": self.total_steps,
            "epochs_completed": state.epoch,
            "stopped_early": state.stopped_early,
            "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "max_length": self.max_length,
            "num_train_examples": self.num_train_examples,
            "num_validation_examples": self.num_validation_examples,
            "train_seconds_this_session": round(elapsed, 3),
            "evaluation_seconds_this_session": round(self.evaluation_seconds, 3),
            "train_examples_per_second": round(examples / (elapsed - self.evaluation_seconds), 3)
            if elapsed > self.evaluation_seconds
            else None,
            "resumed_from": str(self.resume_from) if self.resume_from else None,
            "best_model_dir": str(self.output_dir / BEST_MODEL_DIR),
            "command": self.command,
            **(audit or {}),
            "history": state.history,
        }
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            if self.config.output.push_to_hub:
                url = push_model(
                    self.output_dir / BEST_MODEL_DIR,
                    self.config.output,
                    commit_message=f"attnlens: {self.config.training.metric_for_best}={state.best_metric:.4f}",
                )
                accelerator.print(f"pushed to {url}")
            accelerator.print(f"best model ({self.config.training.metric_for_best}={state.best_metric:.4f}) "
                              f"in {self.output_dir / BEST_MODEL_DIR}; metrics in {self.output_dir / METRICS_FILE}")
        accelerator.wait_for_everyone()
        return summary


def run_job(config: JobConfig, command: str) -> dict[str, Any]:
    """Build everything, train, write `best/`, `metrics.json` (and push if asked); returns the summary."""
    return FineTuningJob(config, command).run()
