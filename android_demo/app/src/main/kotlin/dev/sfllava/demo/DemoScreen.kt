package dev.sfllava.demo

import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.Image
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.height
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyRow
import androidx.compose.foundation.lazy.items
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.text.selection.SelectionContainer
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.DropdownMenu
import androidx.compose.material3.DropdownMenuItem
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.res.stringResource
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.dp

@Composable
fun DemoScreen(model: DemoViewModel) {
    val picker =
        rememberLauncherForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
            if (uri != null) model.pickVideo(uri)
        }
    var question by remember { mutableStateOf("What is happening in this video?") }
    Column(
        modifier = Modifier.fillMaxSize().padding(16.dp).verticalScroll(rememberScrollState()),
        verticalArrangement = Arrangement.spacedBy(12.dp)
    ) {
        Text(stringResource(R.string.app_name), style = MaterialTheme.typography.titleLarge)
        if (model.bundles.isEmpty()) {
            EmptyState(model.pushCommand)
        } else {
            BundlePicker(model.bundles, model.selected, model::select)
        }
        OutlinedButton(
            onClick = { picker.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.VideoOnly)) },
            enabled = model.bundles.isNotEmpty()
        ) { Text(stringResource(if (model.video == null) R.string.pick_video else R.string.new_clip)) }
        if (model.thumbnails.isNotEmpty()) {
            LazyRow(horizontalArrangement = Arrangement.spacedBy(4.dp)) {
                items(model.thumbnails) { bmp ->
                    Image(bitmap = bmp.asImageBitmap(), contentDescription = null, modifier = Modifier.height(72.dp))
                }
            }
        }
        OutlinedTextField(
            value = question,
            onValueChange = { question = it },
            label = { Text(stringResource(R.string.question_hint)) },
            modifier = Modifier.fillMaxWidth()
        )
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Button(onClick = { model.ask(question) }, enabled = model.busy == null) {
                Text(stringResource(if (model.history.isEmpty() && model.answer.isEmpty()) R.string.ask else R.string.ask_follow_up))
            }
            OutlinedButton(onClick = model::stop, enabled = model.busy == "Answering") { Text(stringResource(R.string.stop)) }
            OutlinedButton(onClick = model::startOver, enabled = model.busy == null && model.video != null) {
                Text(stringResource(R.string.start_over))
            }
        }
        if (model.clipReady && model.history.isEmpty() && model.answer.isEmpty()) {
            Text(stringResource(R.string.clip_ready), style = MaterialTheme.typography.labelMedium)
        }
        model.busy?.let { label ->
            Text(label, style = MaterialTheme.typography.labelMedium)
            LinearProgressIndicator(modifier = Modifier.fillMaxWidth())
        }
        for (exchange in model.history) {
            Text("Q: ${exchange.question}", style = MaterialTheme.typography.labelLarge)
            SelectionContainer { Text(exchange.answer, style = MaterialTheme.typography.bodyMedium) }
            exchange.stats?.let { StatsRow(it) }
        }
        if (model.answer.isNotEmpty()) {
            SelectionContainer { Text(model.answer, style = MaterialTheme.typography.bodyLarge) }
        }
        model.stats?.let { StatsRow(it) }
        model.error?.let { ErrorCard(it) }
        if (model.contextFull) {
            Button(onClick = model::startOver, enabled = model.busy == null) { Text(stringResource(R.string.start_over)) }
        }
    }
}

@Composable
private fun EmptyState(command: String) {
    Card(modifier = Modifier.fillMaxWidth()) {
        Column(modifier = Modifier.padding(12.dp)) {
            Text(stringResource(R.string.no_bundle))
            SelectionContainer { Text(command, fontFamily = FontFamily.Monospace) }
        }
    }
}

@Composable
private fun BundlePicker(names: List<String>, selected: String?, onSelect: (String) -> Unit) {
    var menuOpen by remember { mutableStateOf(false) }
    val label = selected ?: "choose"
    OutlinedButton(onClick = { menuOpen = true }) { Text("Model: $label") }
    DropdownMenu(expanded = menuOpen, onDismissRequest = { menuOpen = false }) {
        for (name in names) {
            DropdownMenuItem(text = { Text(name) }, onClick = {
                menuOpen = false
                onSelect(name)
            })
        }
    }
}

@Composable
private fun ErrorCard(message: String) {
    Card(modifier = Modifier.fillMaxWidth()) {
        Text(message, color = MaterialTheme.colorScheme.error, modifier = Modifier.padding(12.dp))
    }
}

@Composable
private fun StatsRow(s: AnswerStats) {
    val decode = s.decodeTokensPerSecond?.let { "%.1f".format(it) } ?: "-"
    val kind = if (s.followUp) "follow-up" else "first question"
    Text(
        "%s: first token %.2f s · decode %s tok/s · %d tokens (%s) · %d positions left"
            .format(kind, s.timeToFirstTokenS, decode, s.tokens, s.stop.name.lowercase(), s.contextLeft),
        style = MaterialTheme.typography.labelMedium
    )
}
