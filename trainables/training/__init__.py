"""Training on a Ray Train worker: what the driver hands it (`config`), the entry point Ray Train calls (`entry`), the
loop (`loop`) and its seams — the task's rows (`task_data`), the teacher and its logits (`teacher_logits`), one
batch's loss (`loss_step`), the checkpoint files (`checkpoints`) — with the optimizer and schedule (`optim`) and token
masking (`augment`)."""
