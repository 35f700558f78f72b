"""The runtime: what `vaultsched run` does with a vault, one stage per module.

    follow   (follow.py)    the index, the watcher, debouncing, move detection -> IndexDelta
    dispatch (dispatch.py)  no I/O: planner decisions, trust refusals, approval, overlap,
                            retries -> Submit / Record / AwaitApproval / Invalid
    execute  (execute.py)   where a run executes, behind `Executor`: local threads, or the
                            worker pool (pool.py: send.py sends, collect.py lands what comes
                            back, flights.py what they share; worker.py is the worker's side);
                            one run itself in run.py (task slot, process, cancel)
    record   (record.py)    the ledger's start and finish records, whoever ran the task
    land     (land.py)      views (run blocks, digests) and notifications, then commit.py
    daemon   (daemon.py)    life cycle and wiring only

`run-now`, `approve` and the other one-shot commands use the same stages (oneshot.py), so a
run lands the same way whoever started it.
"""
