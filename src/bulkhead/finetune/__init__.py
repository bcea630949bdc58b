"""Fine-tuning: the contract between the API and the runner, and the sandboxed runner.

`contract` holds what both sides share: the bounded hyper-parameters (`Hyper`, `check_hyper`,
`HYPER_BOUNDS` per tier), the chat-JSONL validator (`parse_examples`), the runner's input
(`TrainInput`), its events (`TrainEvent`), its result (`Outcome`) and the `Runner` / `RunHandle`
protocols.  `runner` starts each job in its own sandboxed process of the training tier (own uid,
no network, memory/CPU/time limits, seccomp, Landlock, no data dir); the base weights and the
examples go in over stdin and the adapter comes back over stdout, so nothing is written to disk.

Like `runtime`, this is a lower layer: it never imports the gateway, admin, cli, app or settings.
"""
