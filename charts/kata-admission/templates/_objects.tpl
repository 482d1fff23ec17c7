{{/*
The objects of one YAML file of deploy/ (several documents, comments allowed), as a list of maps.
*/}}
{{- define "kata-admission.documents" -}}
{{- $documents := list -}}
{{- range regexSplit "(?m)^---[ \t]*$" . -1 -}}
{{- $object := fromYaml . -}}
{{- if $object -}}{{- $documents = append $documents $object -}}{{- end -}}
{{- end -}}
{{- toJson $documents -}}
{{- end -}}

{{/*
What the values change on one object: the same changes as deploy/overlays/enforce and the
components (a test compares `helm template` with `kustomize build`).
*/}}
{{- define "kata-admission.patch" -}}
{{- $o := .object -}}
{{- $v := .values -}}
{{- if and (eq $o.kind "Deployment") (eq $o.metadata.name "kata-admission") -}}
{{- $_ := set $o.spec "replicas" ($v.replicas | int) -}}
{{- $c := index $o.spec.template.spec.containers 0 -}}
{{- $_ := set $c "image" (printf "%s:%s" $v.image.repository ($v.image.tag | default .appVersion)) -}}
{{- if $v.image.pullPolicy -}}{{- $_ := set $c "imagePullPolicy" $v.image.pullPolicy -}}{{- end -}}
{{- if $v.resources -}}{{- $_ := set $c "resources" $v.resources -}}{{- end -}}
{{- if $v.register -}}
{{- $_ := set $c "args" (concat $c.args (list "--register" "--tls-ca=/etc/kata-admission/tls/ca.crt")) -}}
{{- end -}}
{{- else if and (eq $o.kind "MutatingWebhookConfiguration") (eq $o.metadata.name "kata-admission") -}}
{{- $w := index $o.webhooks 0 -}}
{{- if eq $v.phase "enforce" -}}{{- $_ := set $w "failurePolicy" "Fail" -}}{{- end -}}
{{- if $v.caBundle -}}{{- $_ := set $w.clientConfig "caBundle" $v.caBundle -}}{{- end -}}
{{- if $v.certManager -}}
{{- $_ := set $o.metadata "annotations" (merge (dict "cert-manager.io/inject-ca-from" "kata-admission/kata-admission-tls") ($o.metadata.annotations | default dict)) -}}
{{- end -}}
{{- else if and (eq $o.kind "ValidatingAdmissionPolicyBinding") (eq $o.metadata.name "kata-admission-guard") -}}
{{- if eq $v.phase "enforce" -}}{{- $_ := set $o.spec "validationActions" (list "Deny") -}}{{- end -}}
{{- end -}}
{{- toJson $o -}}
{{- end -}}
