"""What happens once a task has ended, run or not: its `Completion` (the result to keep
and what to do with its message), the follow-ups it sets off (a chain's next step, a
chord's callback, error handlers, freed claims), and the operations that end tasks from
outside a worker (revoke, re-running dead letters), the queues paused cluster-wide
(pausing.py), and the periodic schedules operators change at run time (scheduling.py,
kept as schedule_store.py says)."""
