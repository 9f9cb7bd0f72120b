-- Argo CD health check for clusterscale.io/ScaledCluster.
-- Precedence (first match wins):
--   1. no status yet                                  -> Progressing
--   2. Degraded condition True                        -> Degraded (reason + lastError.code)
--   3. spec.paused true                               -> Suspended
--   4. metadata.generation ~= status.observedGeneration -> Progressing
--   5. Progressing condition True                     -> Progressing
--   6. Ready condition True                           -> Healthy (with the cloud's own
--      view when ClusterHealthy is False: an MRS cluster at its counts
--      but `abnormal` for one unhealthy node)
--   7. otherwise                                      -> Progressing (an operation,
--      or a block the spec chose: paused, dryRun, scaleIn.allowed, clamps)
-- Degraded is True only when the operator cannot progress without help
-- (a permanent error, or a retryable one past --degraded-after-seconds).
-- Uses no `string` or `math` functions: argocd-cm checks run without them.
local hs = {}

local function condition(status, t)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end

local function text(v)
  if v == nil then
    return ""
  end
  return tostring(v)
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  local msg = text(degraded.reason)
  if status.lastError ~= nil and status.lastError.code ~= nil then
    msg = msg .. " (" .. text(status.lastError.code) .. ")"
  end
  if degraded.message ~= nil and degraded.message ~= "" then
    msg = msg .. ": " .. text(degraded.message)
  end
  hs.status = "Degraded"
  hs.message = msg
  return hs
end

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Paused: observing only, not scaling"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. text(generation)
  return hs
end

local progressing = condition(status, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = text(progressing.reason) .. ": " .. text(progressing.message)
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready.message)
  local cluster = condition(status, "ClusterHealthy")
  if cluster ~= nil and cluster.status == "False" then
    hs.message = hs.message .. " (the cloud reports the cluster " .. text(cluster.reason) .. ": " .. text(cluster.message) .. ")"
  end
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = text(ready.reason) .. ": " .. text(ready.message)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
