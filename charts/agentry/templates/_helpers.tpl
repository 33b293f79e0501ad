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

{{/* Rules the operator needs in a namespace it watches. */}}
{{- define "agentry.namespacedRules" -}}
- apiGroups: ["agentry.dev"]
  resources: ["agents"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["agentry.dev"]
  resources: ["agents/status"]
  verbs: ["get", "patch", "update"]
{{- /* Children carry blockOwnerDeletion: true in their ownerReference to the Agent. With
OwnerReferencesPermissionEnforcement (OpenShift, hardened clusters) setting it needs update
on the owner's finalizers subresource. */}}
- apiGroups: ["agentry.dev"]
  resources: ["agents/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["serviceaccounts", "services", "configmaps", "secrets", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  # delete: the finalizer removes an Agent's heartbeat Leases with its state (not retained)
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
