-- wrk script: POST the same voice notice over and over.
-- Arguments (after --): path, Authorization header value, JSON body.
-- No per-response hook (it would cost wrk CPU on the same cores); accept_load.sh checks
-- afterwards that every answered request left a stored call.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  wrk.path = args[1]
  wrk.headers["Authorization"] = args[2]
  wrk.body = args[3]
end
