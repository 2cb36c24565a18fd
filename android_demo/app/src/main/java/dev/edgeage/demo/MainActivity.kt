package dev.edgeage.demo

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.Spinner
import android.widget.TextView
import android.widget.Toast
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import dev.edgeage.core.ModelSpec
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Camera preview with age and gender over every face. The model files, their input size, normalisation and
 * output meaning all come from assets/manifest.json (written by `edge-age android install`).
 */
class MainActivity : AppCompatActivity() {
    private lateinit var spec: ModelSpec
    private lateinit var preview: PreviewView
    private lateinit var overlay: OverlayView
    private lateinit var status: TextView
    private lateinit var analyzer: FaceAnalyzer
    /** Analysis and model (re)loading share one thread, so a model is never closed while it runs. */
    private val analysisThread: ExecutorService = Executors.newSingleThreadExecutor()
    @Volatile private var model: AgeGenderModel? = null
    private var useFrontCamera = true
    private var chosenFile = 0
    private var chosenAccelerator = Accelerator.XNNPACK
    private var chosenThreads = 4

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else status.setText(R.string.camera_denied)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        overlay = findViewById(R.id.overlay)
        status = findViewById(R.id.status)
        spec = try {
            ModelSpec.parse(assets.open(MANIFEST).bufferedReader().use { it.readText() })
        } catch (e: Exception) {
            status.text = "assets/$MANIFEST unreadable: ${e.message}\nInstall a model: edge-age android install EXPORT_DIR"
            return
        }
        setUpChoices()
        analyzer = FaceAnalyzer({ model }) { result -> runOnUiThread { show(result) } }
        loadModel()
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun setUpChoices() {
        val files = spec.files.map { "${spec.modelName} ${it.precision}" }
        bindSpinner(R.id.model_choice, files, chosenFile) { chosenFile = it; loadModel() }
        bindSpinner(R.id.accelerator_choice, Accelerator.values().map { it.label }, chosenAccelerator.ordinal) {
            chosenAccelerator = Accelerator.values()[it]
            loadModel()
        }
        val threads = listOf(1, 2, 4, 8)
        bindSpinner(R.id.threads_choice, threads.map { it.toString() }, threads.indexOf(chosenThreads)) {
            chosenThreads = threads[it]
            loadModel()
        }
        findViewById<Button>(R.id.switch_camera).setOnClickListener {
            useFrontCamera = !useFrontCamera
            startCamera()
        }
    }

    private fun bindSpinner(id: Int, labels: List<String>, selected: Int, onChoice: (Int) -> Unit) {
        val spinner = findViewById<Spinner>(id)
        spinner.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, labels)
        spinner.setSelection(selected, false)
        spinner.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) = onChoice(position)
            override fun onNothingSelected(parent: AdapterView<*>?) = Unit
        }
    }

    /** Build the interpreter for the current choices on the analysis thread, then swap it in. */
    private fun loadModel() {
        val file = spec.files[chosenFile]
        val accelerator = chosenAccelerator
        val threads = chosenThreads
        analysisThread.execute {
            model?.close()
            model = null
            try {
                val loaded = AgeGenderModel(this, spec, file, accelerator, threads)
                model = loaded
                if (accelerator == Accelerator.GPU && loaded.accelerator != Accelerator.GPU) {
                    runOnUiThread { Toast.makeText(this, R.string.gpu_fallback, Toast.LENGTH_LONG).show() }
                }
            } catch (e: Exception) {
                Log.e(TAG, "cannot load ${file.file}", e)
                runOnUiThread { status.text = "cannot load ${file.file}: ${e.message}" }
            }
        }
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val previewUseCase = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .build()
                .also { it.setAnalyzer(analysisThread, analyzer) }
            val camera = if (useFrontCamera) CameraSelector.DEFAULT_FRONT_CAMERA else CameraSelector.DEFAULT_BACK_CAMERA
            provider.unbindAll()
            provider.bindToLifecycle(this, camera, previewUseCase, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun show(result: FrameResult) {
        overlay.show(result, mirrored = useFrontCamera)
        val inference = result.faces.mapNotNull { face -> face.answer?.let { face.inferenceMs } }
        status.text = String.format(
            Locale.ROOT, "%s · %d face(s) · detection %.1f ms%s",
            result.modelLabel, result.faces.size, result.detectionMs,
            if (inference.isEmpty()) "" else String.format(Locale.ROOT, " · model %.1f ms", inference.average()),
        )
    }

    override fun onDestroy() {
        super.onDestroy()
        analysisThread.execute {
            model?.close()
            if (::analyzer.isInitialized) analyzer.close()
        }
        analysisThread.shutdown()
    }

    companion object {
        private const val TAG = "edge-age"
        private const val MANIFEST = "manifest.json"
    }
}
