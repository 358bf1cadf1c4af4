-- Spool schema, version 3: an upper bound on the depth of each depth-limited
-- queue, so enqueues to it need not count its jobs every time.
--
-- Enqueues to a queue with max_depth > 0 lock its row here (FOR NO KEY
-- UPDATE) for their transaction, take depth_bound as the queue's depth while
-- it is recent and the new jobs fit under max_depth, count the jobs otherwise
-- (setting depth_counted_at), and add what they insert. Jobs only become
-- active through an enqueue, and finishing them only lowers the true depth,
-- so the bound stays an upper bound; recounting it every few seconds also
-- takes in jobs enqueued by replicas that had not yet seen a new limit.
ALTER TABLE spool_queues
  ADD COLUMN depth_bound bigint,
  ADD COLUMN depth_counted_at timestamptz;
