{{/* Names and labels shared by the templates. */}}
{{- define "agentry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "agentry.serviceAccountName" -}}
{{- default (printf "%s-operator" (include "agentry.fullname" .)) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "agentry.selectorLabels" -}}
app.kubernetes.io/name: agentry-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentry.labels" -}}
{{ include "agentry.selectorLabels" . }}
app.kubernetes.io/part-of: agentry
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "agentry.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
watchNamespaces as a JSON list: a YAML list as it is, or one comma-separated string
(`--set watchNamespaces=team-a`, or "team-a, team-b") split and trimmed. Callers read it
with `include "agentry.watchNamespaces" . | fromJsonArray`.
*/}}
{{- define "agentry.watchNamespaces" -}}
{{- $raw := .Values.watchNamespaces -}}
{{- $namespaces := list -}}
{{- if kindIs "string" $raw -}}
{{- range splitList "," $raw -}}
{{- if trim . -}}{{- $namespaces = append $namespaces (trim .) -}}{{- end -}}
{{- end -}}
{{- else if $raw -}}
{{- $namespaces = $raw -}}
{{- end -}}
{{- toJson $namespaces -}}
{{- end -}}

{{/*
Rules the operator needs in a namespace it watches: the verbs its code calls, nothing more
(docs/security.md, "The operator's permissions", says why each write and delete is there).
Children go away with their Agent through ownerReferences (the garbage collector), so
`delete` is held only where the operator's own code deletes. Secrets are read by name
(`get`): never `list` or `watch`, so the operator cannot enumerate Secrets it was not
pointed at. The agents' Roles grant get/update/patch/create on ConfigMaps and Leases, and
the API server lets the operator create a Role only with permissions it holds itself.
*/}}
{{- define "agentry.namespacedRules" -}}
- apiGroups: ["agentry.dev"]
  resources: ["agents"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["agentry.dev"]
  resources: ["agents/status"]
  verbs: ["patch"]
{{- /* Children carry blockOwnerDeletion: true in their ownerReference to the Agent. With
OwnerReferencesPermissionEnforcement (OpenShift, hardened clusters) setting it needs update
on the owner's finalizers subresource. */}}
- apiGroups: ["agentry.dev"]
  resources: ["agents/finalizers"]
  verbs: ["update"]
  # delete: never called on a Secret. The API server (OwnerReferencesPermissionEnforcement,
  # on in OpenShift, hardened clusters and the local cluster) lets only who may delete an
  # object change its ownerReferences: the finalizer takes the key Secret out of garbage
  # collection (retainOnDelete) and a new Agent of the same name adopts it back.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
  # list, watch (here and below, never on Secrets): drift is learned from watches of the
  # children filtered by label (docs/operator.md, "drift, from watches")
- apiGroups: [""]
  resources: ["serviceaccounts", "services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch"]
  # delete: state ConfigMaps of an Agent deleted with retainOnDelete: false, and the move
  # of state set aside for a fresh start (copy, then delete)
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
  # delete: the state volumes of an Agent deleted with retainOnDelete: false
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "patch", "delete"]
  # delete: re-created with its pods orphaned when serviceName must change
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
  # delete: the PDB of an Agent scaled back to one replica; the NetworkPolicy of an Agent
  # whose spec.network.policy is turned off
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
  # delete: the heartbeat Leases go with the state of an Agent deleted with
  # retainOnDelete: false
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
